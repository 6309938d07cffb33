"""The gateway against `mlflow models serve`: same model, same body, same load, one run.

Two scikit-learn pipelines (StandardScaler + LogisticRegression on the
breast-cancer data, 30 features) are registered in a fresh sqlite registry, each
declared to need no separate preprocessor (`gray registry bind --none`: the
pipeline holds its own scaler), so both servers run the very same model:

- `tensor`: logged with a numpy input example (tensor signature), driven with
  the body MLflow's client sends for a numpy row, `{"inputs": [[...]]}`;
- `frame`: logged with a DataFrame input example (named columns), driven with
  `{"dataframe_split": {"columns": [...], "data": [[...]]}}`.

For each, `mlflow models serve --env-manager local` and `gray gateway serve` (one
worker process, default settings; and a second gateway with `--batch-size 8`,
unless `--batch-size 1`) serve the same registered version side by side and are
measured in alternating rounds under the same closed-loop load: a fixed number of
keep-alive connections, each sending one single-row request at a time (`wrk`
when installed, else a Python load generator in its own process). The medians of
the rounds are compared.

    python benchmarks/gateway.py [--models tensor,frame] [--seconds 10] [--rounds 3]
                                 [--connections 8] [--tool auto|wrk|python] [--batch-size 8]

Prints requests per second, p50 and p99 latency and the count of non-2xx answers
for both servers, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

GATEWAY_TOKEN = "bench-token"
MODELS = ("tensor", "frame")
MLFLOW = "mlflow models serve"
TARGET_RPS_RATIO = 2.0  # the gateway at least twice mlflow serve's requests per second
TARGET_P99_RATIO = 0.5  # with at most half its p99


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and failed connections


# --- the models -----------------------------------------------------------------------------


def register_models(root: Path, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Register each named model as version 1; returns (registry uri, {name: request body})."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gray.controller.registry import declare_no_preprocessor
    from gray.demo.models import demo_dataset

    features, labels = demo_dataset()
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    bodies = {}
    for name in names:
        inputs = features.to_numpy() if name == "tensor" else features
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        pipeline.fit(inputs, labels)
        example = inputs[:5]
        run = client.create_run(experiment)
        with tempfile.TemporaryDirectory() as staging:
            mlflow.sklearn.save_model(
                pipeline,
                f"{staging}/model",
                signature=infer_signature(example, pipeline.predict(example)),
                input_example=example,
                pip_requirements=["mlflow", "scikit-learn"],
                skops_trusted_types=["numpy.dtype"],
            )
            client.log_artifacts(run.info.run_id, f"{staging}/model", "model")
        client.set_terminated(run.info.run_id)
        client.create_registered_model(name)
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        declare_no_preprocessor(name, "1", registry_uri=uri)
        row = features.iloc[[42]]
        if name == "tensor":
            bodies[name] = json.dumps({"inputs": row.to_numpy().tolist()})
        else:
            bodies[name] = json.dumps(
                {"dataframe_split": {"columns": list(row.columns), "data": row.values.tolist()}}
            )
    return uri, bodies


def check_answers(url: str, body: str) -> list:
    response = httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"Content-Type": "application/json", "X-User-Id": "check"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["predictions"]


# --- load: wrk ------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["X-User-Id"] = "user-" .. math.random(1, 1000000) .. "-" .. counter
  return wrk.format(nil, "/invocations")
end
done = function(summary, latency, requests)
  io.write(string.format("GRAY %d %d %d %f %f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(url: str, body: str, seconds: float, connections: int, workdir: Path) -> LoadResult:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", json.dumps(body)))
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"GRAY (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"unreadable wrk output:\n{output}")
    requests, errors, duration_us = (int(match.group(i)) for i in (1, 2, 3))
    return LoadResult(
        requests_per_second=requests / (duration_us / 1e6),
        p50_ms=float(match.group(4)) / 1000,
        p99_ms=float(match.group(5)) / 1000,
        requests=requests,
        errors=errors,
    )


# --- load: Python, in its own process -----------------------------------------------------


def _python_load_worker(
    host: str, port: int, body: str, seconds: float, connections: int, queue: multiprocessing.Queue
) -> None:
    latencies: list[float] = []
    errors = 0

    async def connection(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        payload = body.encode()
        while time.perf_counter() < deadline:
            request = (
                f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"X-User-Id: user-{random.getrandbits(40)}\r\n\r\n"
            ).encode() + payload
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                errors += 1
        writer.close()

    async def main() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(connection(deadline) for _ in range(connections)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    queue.put((latencies, errors, elapsed))


def run_python_load(url: str, body: str, seconds: float, connections: int) -> LoadResult:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.Process(
        target=_python_load_worker, args=(host, int(port), body, seconds, connections, queue)
    )
    worker.start()
    latencies, errors, elapsed = queue.get(timeout=seconds + 120)
    worker.join(timeout=30)
    latencies.sort()
    return LoadResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        requests=len(latencies),
        errors=errors,
    )


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the comparison -------------------------------------------------------------------------


def drive(
    tool: str, url: str, body: str, seconds: float, connections: int, workdir: Path
) -> LoadResult:
    if tool == "wrk":
        return run_wrk(url, body, seconds, connections, workdir)
    return run_python_load(url, body, seconds, connections)


def measure(
    name: str, tool: str, url: str, body: str, args: argparse.Namespace, workdir: Path
) -> LoadResult:
    drive(tool, url, body, args.warmup, args.connections, workdir)
    result = drive(tool, url, body, args.seconds, args.connections, workdir)
    print(
        f"  {name:<20} {result.requests_per_second:7.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  ({result.requests} requests, {result.errors} errors)",
        flush=True,
    )
    return result


def median_result(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        requests_per_second=statistics.median(r.requests_per_second for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


def print_comparison(name: str, gateway: LoadResult, mlflow: LoadResult, rounds: int) -> bool:
    rows = (
        ("requests/s", gateway.requests_per_second, mlflow.requests_per_second, ".1f"),
        ("p50 latency (ms)", gateway.p50_ms, mlflow.p50_ms, ".2f"),
        ("p99 latency (ms)", gateway.p99_ms, mlflow.p99_ms, ".2f"),
        ("non-2xx answers", gateway.errors, mlflow.errors, ".0f"),
    )
    print()
    print(f"{name}: median of {rounds} round{'s' if rounds != 1 else ''}")
    print(f"{'':<18}{'gray gateway':>14}{'mlflow serve':>14}{'ratio':>8}")
    for label, ours, theirs, form in rows:
        ratio = f"{ours / theirs:8.2f}" if theirs else f"{'-':>8}"
        print(f"{label:<18}{ours:>14{form}}{theirs:>14{form}}{ratio}")
    rps_ratio = gateway.requests_per_second / mlflow.requests_per_second
    p99_ratio = gateway.p99_ms / mlflow.p99_ms
    met = (
        rps_ratio >= TARGET_RPS_RATIO
        and p99_ratio <= TARGET_P99_RATIO
        and gateway.errors == 0
        and mlflow.errors == 0
    )
    print(
        f"target (>= {TARGET_RPS_RATIO:g}x requests/s, <= {TARGET_P99_RATIO:g}x p99, no non-2xx): "
        f"{'met' if met else 'NOT met'}"
    )
    return met


def compare(
    name: str, uri: str, body: str, tool: str, args: argparse.Namespace, root: Path
) -> bool:
    """Measure mlflow serve and the gateway (and, with --batch-size, a batching gateway)."""
    from gray.gateway.testing import RunningGateway, start_gateway, start_mlflow_serve

    mlflow_serve = start_mlflow_serve(uri, f"models:/{name}/1", root / f"{name}-mlflow.log")
    variants = {"gray gateway": ["--baseline", "1", *args.gateway_arg]}
    if args.batch_size > 1:
        variants[f"gateway, batch {args.batch_size}"] = [
            *variants["gray gateway"],
            "--batch-size",
            str(args.batch_size),
        ]
    gateways: dict[str, RunningGateway] = {}
    results: dict[str, list[LoadResult]] = {label: [] for label in [*variants, MLFLOW]}
    try:
        for number, (label, extra) in enumerate(variants.items()):
            gateways[label] = start_gateway(
                uri, name, root / f"{name}-gateway-{number}", token=GATEWAY_TOKEN, extra_args=extra
            )
        mlflow_serve.wait_ready()
        expected = check_answers(mlflow_serve.url, body)
        for label, gateway in gateways.items():
            if check_answers(gateway.url, body) != expected:
                raise RuntimeError(f"{label} and mlflow serve disagree on {body}")
        urls = {**{label: g.url for label, g in gateways.items()}, MLFLOW: mlflow_serve.url}
        for number in range(1, args.rounds + 1):
            print(f"{name}, round {number}:", flush=True)
            for label, url in urls.items():
                results[label].append(measure(label, tool, url, body, args, root))
    finally:
        for gateway in gateways.values():
            gateway.stop()
        mlflow_serve.stop()
    theirs = median_result(results[MLFLOW])
    met = [
        print_comparison(f"{name}, {label}", median_result(results[label]), theirs, args.rounds)
        for label in variants
    ]
    return met[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="tensor, frame or both")
    parser.add_argument("--seconds", type=float, default=10.0, help="Per server per round.")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (median).")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="Also measure a gateway run with --batch-size N (1: skip it).",
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        help="Extra `gray gateway serve` argument (repeatable): --gateway-arg=--predict-threads=2",
    )
    args = parser.parse_args(argv)
    names = tuple(n.strip() for n in args.models.split(",") if n.strip())
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    with tempfile.TemporaryDirectory(prefix="gray-bench-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("GRAY_CACHE_DIR", str(root / "cache"))
        print(
            f"load: {tool}, {args.connections} connections, {args.rounds} alternating rounds of "
            f"{args.seconds:g} s per server, one single-row request per call; gateway: one worker"
        )
        uri, bodies = register_models(root, names)
        results = [compare(name, uri, bodies[name], tool, args, root) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
