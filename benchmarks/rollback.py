"""How long a rollback takes to reach users, and how long the operator's commands take.

gray: the endpoint already holds both versions, so a rollback is one fenced HTTP
write to the gateway (`POST /admin/rollback`). Measured three ways: the write
alone, as the controller and `gray rollback` issue it; from typing `gray
rollback ID` in a shell until the route reads weight 0 (Python start-up
included); and the whole command (its bookkeeping included: the local journal
at once, MLflow in the background). `gray rollout list` and `gray rollout status
ID` are timed the same way, as an on-call engineer types them.

The peer is what a team without a traffic-splitting endpoint does: move the
MLflow alias back and restart `mlflow models serve` on `models:/NAME@champion`;
users get the old model once the new process answers `/ping`.

    python benchmarks/rollback.py [--writes 50] [--commands 5] [--restarts 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

TOKEN = "bench-token"
MODEL = "fraud"
SERVE_START_TIMEOUT_SECONDS = 180.0


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(v * 1000 for v in values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"GRAY_GATEWAY_TOKEN": TOKEN, "GRAY_HOME": str(home)})
    return env


def _held_rollout(url: str, versions: dict[str, str], epoch: int) -> str:
    """A rollout at its first stage in the local journal (as `gray rollout start` leaves
    it), with its endpoint saved beside it; returns its id."""
    from gray.controller.journal import Journal, LocalJournal, new_rollout_id
    from gray.controller.operator import Endpoint, save_endpoint
    from gray.controller.state import Phase, RolloutState

    now = time.time()
    state = RolloutState(
        rollout_id=new_rollout_id(MODEL),
        plan_name="bench",
        model=MODEL,
        baseline=versions["baseline"],
        candidate=versions["good"],
        baseline_ref="@champion",
        candidate_ref="@challenger",
        epoch=epoch,
        phase=Phase.RUNNING,
        started_at=now,
        updated_at=now,
    )
    journal = Journal(LocalJournal())
    plan = (
        f"name: bench\nmodel: {{name: {MODEL}, baseline: '@champion', candidate: '@challenger'}}\n"
        f"router: {{url: '{url}', token: '${{GRAY_GATEWAY_TOKEN}}'}}\ninterval: 30s\n"
        "gates: [{metric: error_rate, max_increase: 10%}]\nstages: [{weight: 50%, dwell: 1h}]\n"
    )
    journal.create(state, plan)
    journal.append(state, "stage_started", "bench stage", {})
    save_endpoint(journal.local, state.rollout_id, Endpoint("gateway", url, 10.0))
    return state.rollout_id


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def measure_gray(
    uri: str, versions: dict[str, str], root: Path, writes: int, commands: int
) -> dict:
    from gray.controller.routers.gateway import GatewayRouter
    from gray.controller.types import Lease, RouteSpec
    from gray.gateway.testing import start_gateway

    home = root / "home"
    env = _environment(home)
    os.environ["GRAY_HOME"] = str(home)
    with start_gateway(uri, MODEL, root / "gateway", token=TOKEN) as gateway:
        router = GatewayRouter(gateway.url, TOKEN)
        router.ensure_loaded(versions["good"])
        split = RouteSpec(baseline=versions["baseline"], candidate=versions["good"], weight=0.5)

        def split_traffic(rollout_id: str) -> int:
            current = router.read().lease
            epoch = (current.epoch if current else 0) + 1
            router.apply(split, Lease(rollout_id, epoch))
            return epoch

        write_times: list[float] = []
        for _ in range(writes):
            epoch = split_traffic("bench")
            started = time.perf_counter()
            router.rollback(Lease("bench", epoch))
            write_times.append(time.perf_counter() - started)
        effect_times: list[float] = []
        command_times: list[float] = []
        status_times: list[float] = []
        list_times: list[float] = []
        gray = [sys.executable, "-m", "gray.cli"]
        for _ in range(commands):
            current = router.read().lease
            rollout_id = _held_rollout(gateway.url, versions, (current.epoch if current else 0) + 1)
            split_traffic(rollout_id)
            started = time.perf_counter()
            command = subprocess.Popen(
                [*gray, "rollback", rollout_id, "--reason", "bench", "-o", "json"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            # Poll the route: the moment users are back on the baseline.
            while router.read().route.weight != 0:
                time.sleep(0.002)
            effect_times.append(time.perf_counter() - started)
            assert command.wait(timeout=120) == 0
            command_times.append(time.perf_counter() - started)
            status_times.append(_timed([*gray, "rollout", "status", rollout_id], env))
            list_times.append(_timed([*gray, "rollout", "list"], env))
    return {
        "write": _ms(write_times),
        "effect": _ms(effect_times),
        "command": _ms(command_times),
        "status": _ms(status_times),
        "list": _ms(list_times),
    }


def _start_serve(uri: str, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from gray.gateway.testing import free_port

    port = free_port()
    env = {**_environment(root / "home"), "MLFLOW_TRACKING_URI": uri}
    log = (root / "serve.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVE_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=1.0).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"mlflow models serve did not answer; see {root / 'serve.log'}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def measure_restart(uri: str, versions: dict[str, str], root: Path, restarts: int) -> dict:
    from mlflow import MlflowClient

    from gray.demo.models import demo_dataset

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    features, _ = demo_dataset()
    body = {"dataframe_split": features.head(1).to_dict(orient="split")}
    body.pop("index", None)
    times: list[float] = []
    client.set_registered_model_alias(MODEL, "champion", versions["good"])
    process, _ = _start_serve(uri, root)
    for _ in range(restarts):
        started = time.perf_counter()
        client.set_registered_model_alias(MODEL, "champion", versions["baseline"])
        _stop(process)
        process, url = _start_serve(uri, root)
        httpx.post(f"{url}/invocations", json=body, timeout=30).raise_for_status()
        times.append(time.perf_counter() - started)
    _stop(process)
    return {"restart": _ms(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--commands", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=3, help="0 skips the peer")
    args = parser.parse_args(argv)
    from gray.demo.models import register_demo_models

    with tempfile.TemporaryDirectory(prefix="gray-bench-rollback-") as folder:
        root = Path(folder)
        uri = f"sqlite:///{root}/mlflow.db"
        versions = register_demo_models(uri, MODEL, which=("baseline", "good"))
        gray = measure_gray(uri, versions, root, args.writes, args.commands)
        peer = measure_restart(uri, versions, root, args.restarts) if args.restarts else None
    table = Table(title="rollback and operator commands on this machine")
    for column in ("what", "runs", "median", "p99"):
        table.add_column(column, justify="right" if column != "what" else "left")
    rows = [
        ("fenced endpoint write (POST /admin/rollback)", args.writes, gray["write"]),
        ("`gray rollback ID` typed until traffic is back", args.commands, gray["effect"]),
        ("the whole `gray rollback ID` command", args.commands, gray["command"]),
        ("`gray rollout status ID`", args.commands, gray["status"]),
        ("`gray rollout list`", args.commands, gray["list"]),
    ]
    if peer:
        rows.append(("alias move + restart `mlflow models serve`", args.restarts, peer["restart"]))
    for name, runs, (median, p99) in rows:
        table.add_row(name, str(runs), f"{median:,.1f} ms", f"{p99:,.1f} ms")
    console = Console()
    console.print(table)
    if peer:
        ratio = peer["restart"][0] / gray["write"][0]
        console.print(f"the endpoint write is {ratio:,.0f}x faster than a restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
