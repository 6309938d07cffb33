"""`gray watch` against a real sqlite registry and a real gateway: the candidate alias moves,
the watcher starts the rollout through the ordinary start path; after the rollout is rolled
back the watcher leaves that version alone, and `gray rollout retry` starts it again under a
new id, linked to the old rollout both ways."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gray.controller.journal import LocalJournal
from tests.conftest import DemoRegistry
from tests.e2e.conftest import LONG_STAGES, Stack, live_stack

pytestmark = pytest.mark.slow


def next_event(process: subprocess.Popen[str], wanted: dict[str, Any], timeout: float = 60) -> dict:
    """The watcher's next JSON line whose fields include `wanted`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                errors = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"watcher exited {process.returncode}: {seen} {errors}")
            continue
        event = json.loads(line)
        seen.append(event)
        if all(event.get(k) == v for k, v in wanted.items()):
            return event
    raise AssertionError(f"no {wanted} in {timeout}s: {seen}")


def wait_for_exit(pid: int, timeout: float = 30) -> None:
    """A detached controller leaves once an operator's rollback fenced it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    raise AssertionError(f"controller {pid} kept running after its rollout was rolled back")


@pytest.fixture
def stack(fresh_registry: DemoRegistry, tmp_path: Path) -> Iterator[Stack]:
    """A real gateway on a private copy of the demo registry, without traffic: every rollout
    here ends by an operator's rollback, none waits for a verdict."""
    with live_stack(fresh_registry.uri, fresh_registry.versions, tmp_path, traffic=False) as live:
        yield live


def test_watch_starts_on_alias_move_skips_rolled_back_and_retry_links(stack: Stack) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.registry_uri, registry_uri=stack.registry_uri)
    baseline, good = stack.versions["baseline"], stack.versions["good"]
    client.set_registered_model_alias("fraud", "challenger", baseline)
    plan = stack.plan("watch", "challenger", LONG_STAGES)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "gray.cli", "watch", str(plan), "--interval", "0.5s", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        next_event(watcher, {"event": "decision", "action": "idle", "version": baseline})
        client.set_registered_model_alias("fraud", "challenger", good)
        started = next_event(watcher, {"event": "started", "version": good})
        rollout_id = started["rollout_id"]
        record = LocalJournal().load(rollout_id)
        assert record is not None and record.state.candidate == good
        assert record.state.baseline == baseline

        rolled_back = stack.gray("rollback", rollout_id, "--reason", "drill", "-o", "json")
        assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
        skipped = next_event(watcher, {"event": "decision", "action": "skip"})
        assert f"gray rollout retry {rollout_id}" in skipped["reason"]
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=60) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    first_controller = int(started["reason"].split("controller pid ")[1].split(",")[0])

    retried = stack.gray("rollout", "retry", rollout_id, "--detach", "-o", "json")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    answer = json.loads(retried.stdout.strip().splitlines()[-1])
    new_id = answer["rollout_id"]
    assert new_id != rollout_id and answer["retry_of"] == rollout_id
    assert (answer["baseline"], answer["candidate"]) == (baseline, good)
    try:
        new = LocalJournal().load(new_id)
        assert new is not None and new.state.retry_of == rollout_id
        assert (new.state.baseline, new.state.candidate) == (baseline, good)
        assert f'baseline: "{baseline}"' in new.plan_text  # pinned, not @champion
        old = LocalJournal().load(rollout_id)
        assert old is not None and old.state.phase == "rolled_back"
        assert [e.data["retry"] for e in old.events if e.event == "retried"] == [new_id]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started_events = [e for e in LocalJournal().load(new_id).events if e.event == "started"]
            if started_events:
                break
            time.sleep(0.2)
        assert started_events[0].data["retry_of"] == rollout_id
    finally:
        stack.gray("rollback", new_id, "--reason", "cleanup", "-o", "json")
    for pid in (first_controller, answer["pid"]):
        wait_for_exit(pid)
