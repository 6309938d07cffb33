"""How long a rollback takes to reach users: gray against restarting the model server.

gray: the endpoint already holds both versions, so a rollback is one fenced HTTP
write to the gateway (`POST /admin/rollback`). Measured twice: the write alone,
as the controller and `gray rollback` issue it, and the whole `gray rollback`
command from a shell (Python start-up included).

The peer is what a team without a traffic-splitting endpoint does: move the
MLflow alias back and restart `mlflow models serve` on `models:/NAME@champion`;
users get the old model once the new process answers `/ping`.

    python benchmarks/rollback.py [--writes 50] [--commands 3] [--restarts 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

_spec = importlib.util.spec_from_file_location(
    "gateway_benchmark", Path(__file__).with_name("gateway.py")
)
assert _spec and _spec.loader
gateway_benchmark = importlib.util.module_from_spec(_spec)
sys.modules["gateway_benchmark"] = gateway_benchmark  # dataclasses look their module up here
_spec.loader.exec_module(gateway_benchmark)

TOKEN = "bench-token"


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(v * 1000 for v in values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def measure_gray(uri: str, versions: list[str], root: Path, writes: int, commands: int) -> dict:
    from gray.controller.routers.gateway import GatewayRouter
    from gray.controller.types import Lease, RouteSpec
    from gray.gateway.testing import start_gateway

    model = gateway_benchmark.MODEL_NAME
    with start_gateway(uri, model, root / "gateway", token=TOKEN) as gateway:
        router = GatewayRouter(gateway.url, TOKEN)
        router.ensure_loaded(versions[1])
        split = RouteSpec(baseline=versions[0], candidate=versions[1], weight=0.5)
        write_times: list[float] = []
        for _ in range(writes):
            current = router.read().lease
            epoch = (current.epoch if current else 0) + 1
            router.apply(split, Lease("bench", epoch))
            started = time.perf_counter()
            router.rollback(Lease("bench", epoch))
            write_times.append(time.perf_counter() - started)
        command_times: list[float] = []
        effect_times: list[float] = []
        env = {
            **gateway_benchmark.venv_environment(),
            "GRAY_GATEWAY_TOKEN": TOKEN,
            "GRAY_HOME": str(root / "home"),
        }
        for _ in range(commands):
            current = router.read().lease
            router.apply(split, Lease("bench", (current.epoch if current else 0) + 1))
            started = time.perf_counter()
            command = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gray.cli",
                    "rollback",
                    model,
                    "--router-url",
                    gateway.url,
                    "--registry-uri",
                    uri,
                    "--output",
                    "json",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            # Poll the route: the moment users are back on the baseline, before the
            # command finishes its bookkeeping (journal, registry tags).
            while router.read().route.weight != 0:
                time.sleep(0.002)
            effect_times.append(time.perf_counter() - started)
            assert command.wait(timeout=120) == 0
            command_times.append(time.perf_counter() - started)
    return {
        "write": _ms(write_times),
        "effect": _ms(effect_times),
        "command": _ms(command_times),
    }


def measure_restart(uri: str, versions: list[str], root: Path, restarts: int, body: str) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = gateway_benchmark.MODEL_NAME
    times: list[float] = []
    process, _ = gateway_benchmark.start_mlflow_serve(uri, versions[1], root)
    for _ in range(restarts):
        started = time.perf_counter()
        client.set_registered_model_alias(model, "champion", versions[0])
        gateway_benchmark.stop_group(process)
        process, url = gateway_benchmark.start_mlflow_serve(uri, versions[0], root)
        httpx.post(
            f"{url}/invocations", content=body, headers={"Content-Type": "application/json"}
        ).raise_for_status()
        times.append(time.perf_counter() - started)
    gateway_benchmark.stop_group(process)
    return {"restart": _ms(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--commands", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gray-bench-rollback-") as folder:
        root = Path(folder)
        uri, versions, body = gateway_benchmark.register_models(root)
        gray = measure_gray(uri, versions, root, args.writes, args.commands)
        peer = measure_restart(uri, versions, root, args.restarts, body)
    table = Table(title="time until users get the baseline again")
    for column in ("how", "runs", "median", "p99"):
        table.add_column(column, justify="right" if column != "how" else "left")
    rows = [
        ("gray: fenced endpoint write (POST /admin/rollback)", args.writes, gray["write"]),
        ("gray: `gray rollback` typed until traffic is back", args.commands, gray["effect"]),
        ("gray: the whole `gray rollback` command", args.commands, gray["command"]),
        ("alias move + restart `mlflow models serve`", args.restarts, peer["restart"]),
    ]
    for name, runs, (median, p99) in rows:
        table.add_row(name, str(runs), f"{median:,.1f} ms", f"{p99:,.1f} ms")
    console = Console()
    console.print(table)
    ratio = peer["restart"][0] / gray["write"][0]
    console.print(f"the endpoint write is {ratio:,.0f}x faster than a restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
