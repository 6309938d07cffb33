"""A hung or dead MLflow must not delay an automatic rollback: the endpoint write follows the
FAIL within one interval plus one second, and the local journal holds the record until MLflow
takes it. Real `mlflow server` (stopped with SIGSTOP), real gateway, real traffic."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gray.controller import lookup, rollouts
from gray.controller.journal import Event
from gray.controller.loop import Step
from gray.controller.plan.loading import load_plan
from gray.controller.plan.models import Plan
from gray.controller.registry import Registry
from gray.controller.runner import Runner, RunResult
from tests.conftest import MlflowServer
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]
module_stack = e2e.module_stack


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Stack:
    """One live stack for the module: every test ends with traffic back on the baseline."""
    return module_stack


BAD_STAGE = "  - {weight: 50%, dwell: 60s}"
DRAIN_SECONDS = 2.0


@dataclass
class Timeline:
    """When things happened, in time.time() seconds."""

    events: list[tuple[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    endpoint_written: float | None = None

    def first(self, name: str) -> float:
        return next(at for event, at in self.events if event == name)

    def looks(self) -> list[float]:
        return [at for event, at in self.events if event == "look"]


@contextlib.contextmanager
def watching_the_endpoint(stack: Stack, timeline: Timeline) -> Iterator[None]:
    """Poll the gateway's route from outside and note when the candidate's share goes."""
    stop = threading.Event()

    def watch() -> None:
        routed = False  # the candidate's share must appear before its going counts
        while not stop.is_set():
            weight = stack.route()["route"]["weight"]
            routed = routed or weight > 0
            if routed and weight == 0:
                timeline.endpoint_written = time.time()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def bad_rollout(
    stack: Stack, journal_uri: str, timeline: Timeline, trouble: Callable[[], None]
) -> tuple[Plan, Runner, Step]:
    """A rollout of a candidate that fails every request; its journal lives in `journal_uri`
    (the plan's registry in production), its versions in the gateway's sqlite registry.
    `trouble` breaks MLflow once the stage has started, mid-rollout."""
    plan_path = stack.plan("mlflow-trouble", "bad-raises", BAD_STAGE)
    plan = load_plan(plan_path)
    shared = Registry(journal_uri, retries=0)
    journal = lookup.open_journal(shared, timeline.warnings.append, background=True)
    router, metrics = rollouts.build_adapters(plan)
    report = rollouts.preflight(plan, Registry(stack.registry_uri), router, metrics, journal)
    step = rollouts.create_rollout(plan, plan_path.read_text(), report, journal)

    def on_event(event: Event) -> None:
        timeline.events.append((event.event, time.time()))
        if event.event == "stage_started":
            trouble()

    runner = Runner(
        plan,
        router,
        metrics,
        shared,
        journal,
        on_event=on_event,
        on_warning=timeline.warnings.append,
        drain_seconds=DRAIN_SECONDS,
    )
    return plan, runner, step


def check_the_rollback_was_not_delayed(plan: Plan, result: RunResult, timeline: Timeline) -> float:
    assert result.exit_code == 1, result.reason
    assert timeline.endpoint_written is not None
    fail_to_write = timeline.endpoint_written - timeline.first("gate_failed")
    assert fail_to_write <= plan.interval + 1.0, fail_to_write
    looks = timeline.looks()
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert max(gaps, default=0.0) <= plan.interval + 1.0, gaps  # nothing stalled the looks
    return fail_to_write


def test_hung_mlflow_does_not_delay_the_rollback(stack: Stack, mlflow_server: MlflowServer) -> None:
    timeline = Timeline()
    plan, runner, step = bad_rollout(
        stack,
        mlflow_server.uri,
        timeline,
        lambda: os.killpg(mlflow_server.process.pid, signal.SIGSTOP),
    )
    rollout_id = step.state.rollout_id
    try:
        with watching_the_endpoint(stack, timeline):
            result = runner.run(step)
    finally:
        os.killpg(mlflow_server.process.pid, signal.SIGCONT)
    fail_to_write = check_the_rollback_was_not_delayed(plan, result, timeline)
    start_to_write = timeline.endpoint_written - timeline.first("stage_started")  # type: ignore[operator]
    print(
        f"\nMLflow hung: FAIL -> endpoint write {fail_to_write * 1000:.0f} ms, "
        f"stage start -> endpoint write {start_to_write:.1f} s"
    )
    # The local journal ended the rollout at once; MLflow gets it once it answers again.
    assert any("MLflow did not take" in w for w in timeline.warnings), timeline.warnings
    synced = stack.gray("rollout", "sync", rollout_id, "--registry-uri", mlflow_server.uri)
    assert synced.returncode == 0, synced.stderr
    seen = stack.gray(
        "rollout", "status", rollout_id, "--registry-uri", mlflow_server.uri, "-o", "json"
    )
    assert json.loads(seen.stdout)["state"]["phase"] == "rolled_back"


class Relay:
    """A loopback port that forwards to MLflow until `cut`, then refuses connections:
    an MLflow server that died, without stopping the session's shared one."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self.sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_dead_mlflow_does_not_delay_the_rollback_and_status_reads_the_local_journal(
    stack: Stack, mlflow_server: MlflowServer
) -> None:
    relay = Relay(int(mlflow_server.uri.rsplit(":", 1)[1]))
    uri = f"http://127.0.0.1:{relay.port}"
    timeline = Timeline()
    plan, runner, step = bad_rollout(stack, uri, timeline, relay.cut)
    with watching_the_endpoint(stack, timeline):
        result = runner.run(step)
    check_the_rollback_was_not_delayed(plan, result, timeline)
    seen = stack.gray(
        "rollout", "status", step.state.rollout_id, "--registry-uri", uri, "-o", "json"
    )
    assert seen.returncode == 1, seen.stderr
    assert json.loads(seen.stdout)["state"]["phase"] == "rolled_back"
