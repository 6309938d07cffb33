"""The gateway against `mlflow models serve`, under the same load on 127.0.0.1.

Both serve one scikit-learn pipeline (StandardScaler + LogisticRegression on the
breast-cancer data) registered in a fresh sqlite registry. The gateway serves two
versions of it with the candidate at 20 % (requests carry varying X-User-Id keys,
so the split is real); `mlflow models serve` serves one. Each server is driven
in turn by the same closed-loop load: a fixed number of keep-alive connections,
each sending one single-row request at a time. The load comes from `wrk` when it
is installed, else from a Python load generator in a separate process.

    python benchmarks/gateway.py [--seconds 10] [--rounds 3] [--connections 8]
                                 [--tool auto|wrk|python]

The two servers run side by side and are measured in alternating rounds, so a
busy machine slows both alike; the medians of the rounds are compared. Prints
requests per second and p50/p99 latency side by side with their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL_NAME = "bench"
GATEWAY_TOKEN = "bench-token"
CANDIDATE_WEIGHT = 0.2


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


# --- the model ------------------------------------------------------------------------------


def register_models(root: Path) -> tuple[str, list[str], str]:
    """Two versions of one scikit-learn pipeline; returns (uri, versions, request body)."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from gray.demo.models import demo_dataset

    features, labels = demo_dataset()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pipeline.fit(features, labels)
    example = features.head(5)
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    client.create_registered_model(MODEL_NAME)
    versions = []
    for _ in range(2):
        run = client.create_run(experiment)
        with tempfile.TemporaryDirectory() as staging:
            mlflow.sklearn.save_model(
                pipeline,
                f"{staging}/model",
                signature=infer_signature(example, pipeline.predict(example)),
                input_example=example,
            )
            client.log_artifacts(run.info.run_id, f"{staging}/model", "model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(
            MODEL_NAME, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        versions.append(str(version.version))
    client.set_registered_model_alias(MODEL_NAME, "champion", versions[0])
    body = json.dumps({"dataframe_split": features.iloc[[42]].to_dict(orient="split")})
    return uri, versions, body


# --- the servers ----------------------------------------------------------------------------


def venv_environment() -> dict[str, str]:
    env = dict(os.environ)
    # `mlflow models serve` starts `uvicorn` by name: the interpreter's bin must be on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def start_mlflow_serve(uri: str, version: str, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from gray.gateway.testing import free_port

    port = free_port()
    env = venv_environment()
    env["MLFLOW_TRACKING_URI"] = uri
    log = open(root / "mlflow-serve.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{MODEL_NAME}/{version}",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited: see {root / 'mlflow-serve.log'}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_group(process)
    raise RuntimeError("mlflow models serve did not answer /ping in 180 s")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def check_answers(url: str, body: str) -> None:
    response = httpx.post(
        f"{url}/invocations",
        content=body,
        headers={"Content-Type": "application/json", "X-User-Id": "check"},
        timeout=10,
    )
    response.raise_for_status()
    if "predictions" not in response.json():
        raise RuntimeError(f"{url} answered {response.text[:200]}")


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


def gateway_split(url: str, versions: list[str]) -> dict[str, int]:
    stats = httpx.get(
        f"{url}/admin/stats", headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"}, timeout=10
    ).json()
    return {v: stats["versions"].get(v, {}).get("requests", 0) for v in versions}


def print_table(gateway: LoadResult, mlflow: LoadResult, rounds: int) -> None:
    rows = (
        ("requests/s", gateway.requests_per_second, mlflow.requests_per_second),
        ("p50 latency (ms)", gateway.p50_ms, mlflow.p50_ms),
        ("p99 latency (ms)", gateway.p99_ms, mlflow.p99_ms),
    )
    print()
    print(f"median of {rounds} round{'s' if rounds != 1 else ''}:")
    print(f"{'':<18}{'gray gateway':>14}{'mlflow serve':>14}{'ratio':>8}")
    for label, ours, theirs in rows:
        ratio = ours / theirs if theirs else float("nan")
        print(f"{label:<18}{ours:>14.1f}{theirs:>14.1f}{ratio:>8.2f}")
    verdict_rps = gateway.requests_per_second >= mlflow.requests_per_second
    verdict_p99 = gateway.p99_ms <= mlflow.p99_ms
    print()
    print(f"gateway serves at least as many requests/s: {'yes' if verdict_rps else 'NO'}")
    print(f"gateway p99 no higher:                      {'yes' if verdict_p99 else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Per server per round.")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (median).")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        help="Extra `gray gateway serve` argument (repeatable): --gateway-arg=--predict-threads=4",
    )
    args = parser.parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"

    from gray.controller.routers.gateway import GatewayRouter
    from gray.controller.types import Lease, RouteSpec
    from gray.gateway.testing import start_gateway

    with tempfile.TemporaryDirectory(prefix="gray-bench-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("GRAY_CACHE_DIR", str(root / "cache"))
        print(
            f"load: {tool}, {args.connections} connections, {args.rounds} alternating rounds of "
            f"{args.seconds:g} s per server, one single-row request per call"
        )
        uri, versions, body = register_models(root)
        gateway = start_gateway(
            uri, MODEL_NAME, root / "gateway", token=GATEWAY_TOKEN, extra_args=args.gateway_arg
        )
        process = None
        try:
            with GatewayRouter(gateway.url, GATEWAY_TOKEN) as router:
                router.apply(
                    RouteSpec(baseline=versions[0], candidate=versions[1], weight=CANDIDATE_WEIGHT),
                    Lease("benchmark", 1),
                )
            process, mlflow_url = start_mlflow_serve(uri, versions[0], root)
            check_answers(gateway.url, body)
            check_answers(mlflow_url, body)
            before = gateway_split(gateway.url, versions)
            ours: list[LoadResult] = []
            theirs: list[LoadResult] = []
            for number in range(1, args.rounds + 1):
                print(f"round {number}:")
                ours.append(measure("gray gateway", tool, gateway.url, body, args, root))
                theirs.append(measure("mlflow models serve", tool, mlflow_url, body, args, root))
            after = gateway_split(gateway.url, versions)
        finally:
            gateway.stop()
            if process is not None:
                stop_group(process)
    served = {v: after[v] - before[v] for v in versions}
    total = sum(served.values()) or 1
    print(
        f"gateway split: version {versions[1]} answered {served[versions[1]] / total:.1%} of "
        f"{total} requests (weight {CANDIDATE_WEIGHT:.0%})"
    )
    print_table(median_result(ours), median_result(theirs), args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
