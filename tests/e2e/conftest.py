"""A live stack per test: a private sqlite registry, a real gateway, real traffic."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gray.gateway.testing import RunningGateway

TOKEN = "e2e-token"

PLAN = """\
name: e2e-{name}
model: {{name: fraud, baseline: "@champion", candidate: "@{alias}", preprocessor: {{artifact: preprocessor}}}}
registry: {{uri: "{registry}"}}
router: {{type: gateway, url: "{url}", token: "${{GRAY_GATEWAY_TOKEN}}"}}
interval: 1s
gates:
  - {{metric: error_rate, max_increase: 50%, max_increase_abs: 5%, min_samples: 60}}
  - {{metric: latency, slo: 50ms, max_increase: 50%, max_increase_abs: 8%, min_samples: 60}}
stages:
{stages}
policies:
  inconclusive: {{extend: 4s, max_extensions: 2, then: pass}}
promote: {{alias: champion, keep_previous_as: previous-champion}}
"""
# A stage whose gates all pass ends early (min_dwell); one that stays undecided runs on.
SHORT_STAGES = (
    "  - {weight: 30%, dwell: 8s, min_dwell: 2s}\n  - {weight: 100%, dwell: 4s, min_dwell: 1s}"
)
LONG_STAGES = (
    "  - {weight: 30%, dwell: 8s}\n  - {weight: 60%, dwell: 60s}\n  - {weight: 100%, dwell: 4s}"
)


@dataclass
class Stack:
    registry_uri: str
    versions: dict[str, str]
    url: str
    home: Path
    root: Path
    gateway: RunningGateway | None = None

    def restart_gateway(self) -> None:
        """Stop the gateway and start it again on the same port and state directory: its
        route comes back from the state directory, its counters start from zero."""
        from gray.gateway.testing import start_gateway

        assert self.gateway is not None
        self.gateway.stop()
        self.gateway = start_gateway(
            self.registry_uri,
            "fraud",
            self.gateway.state_dir,
            token=TOKEN,
            slo_edges=(0.05,),
            port=self.gateway.port,
        )

    def plan(self, name: str, alias: str, stages: str = SHORT_STAGES) -> Path:
        path = self.root / f"plan-{name}.yaml"
        path.write_text(
            PLAN.format(
                name=name, alias=alias, registry=self.registry_uri, url=self.url, stages=stages
            )
        )
        return path

    def gray(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gray.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ.copy(),
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "gray.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )

    def stats(self) -> dict:
        response = httpx.get(
            f"{self.url}/admin/stats", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        response.raise_for_status()
        return response.json()

    def served(self, version: str) -> int:
        return int(self.stats()["versions"].get(version, {}).get("requests", 0))

    def route(self) -> dict:
        response = httpx.get(
            f"{self.url}/admin/route", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        response.raise_for_status()
        return response.json()


def read_events(process: subprocess.Popen[str], until: str, timeout: float = 120) -> list[dict]:
    """JSON lines from a controller's stdout until an event named `until` arrives."""
    assert process.stdout is not None
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                reasons = [f"{e.get('event')}: {e.get('reason')}" for e in events]
                stderr = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"controller exited {process.returncode}: {reasons} {stderr}")
            continue
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        events.append(event)
        if event.get("event") == until:
            return events
    raise AssertionError(f"no {until} event in {timeout}s: {[e.get('event') for e in events]}")


@contextlib.contextmanager
def live_stack(
    registry_uri: str, versions: dict[str, str], root: Path, *, traffic: bool = True
) -> Iterator[Stack]:
    """A real gateway on `registry_uri` with steady traffic (unless a test needs no verdict),
    GRAY_HOME under `root` and the gateway token in the environment, for as long as the
    block runs."""
    from gray.demo.models import demo_dataset
    from gray.demo.traffic import TrafficGenerator
    from gray.gateway.testing import start_gateway

    home = root / "gray-home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRAY_HOME", str(home))
        env.setenv("GRAY_GATEWAY_TOKEN", TOKEN)
        gateway = start_gateway(
            registry_uri, "fraud", root / "gateway", token=TOKEN, slo_edges=(0.05,)
        )
        features, labels = demo_dataset()
        load = (
            TrafficGenerator(gateway.url, TOKEN, features, labels, rps=60, workers=3).start()
            if traffic
            else None
        )
        stack = Stack(registry_uri, versions, gateway.url, home, root, gateway)
        try:
            yield stack
        finally:
            if load is not None:
                load.stop()
            assert stack.gateway is not None
            stack.gateway.stop()


@pytest.fixture
def stack(fresh_registry, tmp_path: Path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """A live stack per test, on a private copy of the demo registry."""
    with live_stack(fresh_registry.uri, fresh_registry.versions, tmp_path) as live:
        yield live


@pytest.fixture(scope="module")
def module_stack(demo_registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """One live stack for a module whose tests leave it as they found it (traffic on the
    baseline, @champion on it, no active rollout): a gateway start saved per test."""
    from tests.conftest import copy_sqlite_registry

    root = tmp_path_factory.mktemp("live-stack")
    registry = copy_sqlite_registry(demo_registry.root, root / "registry")
    with live_stack(f"sqlite:///{registry}/mlflow.db", dict(demo_registry.versions), root) as live:
        yield live
