"""Whole rollouts against a real gateway and a real sqlite registry, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from gray.controller.registry import Registry

from .conftest import LONG_STAGES, Stack, read_events

pytestmark = pytest.mark.slow


def test_bad_candidate_is_rolled_back_automatically(stack: Stack) -> None:
    plan = stack.plan("bad", "bad-raises")
    result = stack.gray("rollout", "start", str(plan), "--output", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kinds = [e.get("event") for e in events]
    assert "gate_failed" in kinds and kinds[-2] == "rolled_back"
    failed = next(e for e in events if e.get("event") == "gate_failed")
    assert "error rate" in failed["reason"] and "FAIL" in failed["reason"]
    route = stack.route()["route"]
    assert route["weight"] == 0 and route["mirror"] == 0
    assert route["baseline"] == stack.versions["baseline"]
    assert (
        Registry(stack.registry_uri).resolve("fraud", "@champion").version
        == stack.versions["baseline"]
    )


def test_good_candidate_is_promoted_and_the_alias_moves(stack: Stack) -> None:
    plan = stack.plan("good", "challenger")
    result = stack.gray("rollout", "start", str(plan), "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    registry = Registry(stack.registry_uri)
    assert registry.resolve("fraud", "@champion").version == stack.versions["good"]
    assert registry.resolve("fraud", "@previous-champion").version == stack.versions["baseline"]
    assert stack.route()["route"]["baseline"] == stack.versions["good"]
    history = stack.gray("registry", "history", "fraud", "--registry-uri", stack.registry_uri)
    assert "champion" in history.stdout
    # From another machine (no local journal), the rollout is found in MLflow.
    rollout_id = json.loads(result.stdout.splitlines()[-1])["rollout_id"]
    os.environ["GRAY_HOME"] = str(stack.root / "another-machine")
    seen = stack.gray(
        "rollout", "status", rollout_id, "--registry-uri", stack.registry_uri, "-o", "json"
    )
    assert seen.returncode == 0, seen.stderr
    state = json.loads(seen.stdout)["state"]
    assert state["phase"] == "promoted" and state["candidate"] == stack.versions["good"]
    # The rollout is an MLflow run: weight over time, status as tags.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.registry_uri)
    run = client.search_runs(
        [client.get_experiment_by_name("gray-rollouts").experiment_id],
        filter_string=f"tags.`gray.rollout_id` = '{rollout_id}'",
    )[0]
    assert run.data.tags["gray.phase"] == "promoted"
    weights = [m.value for m in client.get_metric_history(run.info.run_id, "weight")]
    assert weights[:2] == [0.3, 1.0]
    # The on-call engineer undoes the promotion: alias back, endpoint serves the old version.
    undo = stack.gray(
        "rollback", "fraud", "--to", "previous", "--registry-uri", stack.registry_uri, "-o", "json"
    )
    assert undo.returncode == 0, undo.stderr
    assert registry.resolve("fraud", "@champion").version == stack.versions["baseline"]
    assert stack.route()["route"]["baseline"] == stack.versions["baseline"]


def test_preflight_refuses_a_broken_plan_target_and_changes_nothing(stack: Stack) -> None:
    plan = stack.plan("missing", "no-such-alias")
    before = stack.route()
    result = stack.gray("rollout", "start", str(plan))
    assert result.returncode == 2
    assert "no-such-alias" in result.stdout + result.stderr
    assert stack.route() == before
    # A dry run of a good plan checks everything, prints the timeline and changes nothing.
    dry = stack.gray("rollout", "start", str(stack.plan("dry", "challenger")), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "candidate loaded" in dry.stdout and "dry run: nothing changed" in dry.stdout
    assert stack.route()["route"] == before["route"]


def test_operator_rollback_beats_a_running_controller(stack: Stack) -> None:
    plan = stack.plan("race", "challenger", LONG_STAGES)
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    try:
        events = read_events(controller, "stage_started")
        # Wait until the second stage is in force, then pull the big red button.
        events += read_events(controller, "stage_started")
        rollout_id = next(e["rollout_id"] for e in events if e.get("rollout_id"))
        candidate = stack.versions["good"]
        # A second rollout of the same model is refused with the id of the running one.
        second = stack.gray("rollout", "start", str(plan))
        assert second.returncode == 2 and rollout_id in second.stdout + second.stderr
        result = stack.gray("rollback", rollout_id, "--reason", "pager", "--output", "json")
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["route"]["weight"] == 0
        after = stack.served(candidate)
        time.sleep(4)  # the controller keeps looking; it must not push traffic back
        assert stack.served(candidate) == after
        # Read while waiting: a controller blocked on a full stdout pipe never exits.
        out, _ = controller.communicate(timeout=60)  # it may wait for MLflow to take events
        assert controller.returncode == 1
        assert "rolled back by" in out  # the operator's record, adopted by the controller
        route = stack.route()
        assert route["route"]["weight"] == 0
        assert route["lease"]["epoch"] == answer["lease"]["epoch"]
        status = json.loads(stack.gray("rollout", "status", rollout_id, "-o", "json").stdout)
        assert status["state"]["phase"] == "rolled_back"
    finally:
        if controller.poll() is None:
            controller.kill()


def test_kill_9_then_resume_finishes_without_repeating_a_stage(stack: Stack) -> None:
    plan = stack.plan("crash", "challenger", LONG_STAGES.replace("60s", "8s"))
    controller = stack.spawn("rollout", "start", str(plan), "--output", "json")
    events = read_events(controller, "stage_started")
    events += read_events(controller, "stage_started")
    rollout_id = next(e["rollout_id"] for e in events if e.get("rollout_id"))
    time.sleep(2)
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait(timeout=10)
    weight_at_crash = stack.route()["route"]["weight"]
    assert weight_at_crash == pytest.approx(0.6)
    result = stack.gray("rollout", "resume", rollout_id, "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    kinds = [e.get("event") for e in resumed]
    assert kinds[0] == "resumed" and "route_verified" in kinds
    # Only the last stage starts after the resume: stage two carried on, it did not restart.
    assert kinds.count("stage_started") == 1
    assert (
        Registry(stack.registry_uri).resolve("fraud", "@champion").version == stack.versions["good"]
    )


def test_detached_rollout_runs_in_the_background(stack: Stack) -> None:
    plan = stack.plan("detached", "challenger")
    started = time.monotonic()
    result = stack.gray("rollout", "start", str(plan), "--detach", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    rollout_id = answer["rollout_id"]
    assert time.monotonic() - started < 60
    deadline = time.monotonic() + 120
    phase = ""
    while time.monotonic() < deadline:
        status = stack.gray("rollout", "status", rollout_id, "-o", "json")
        phase = json.loads(status.stdout)["state"]["phase"]
        if phase in ("promoted", "rolled_back", "aborted"):
            break
        time.sleep(2)
    assert phase == "promoted", (
        stack.home / "rollouts" / rollout_id / "controller.log"
    ).read_text()


def test_until_stage_leaves_a_watcher_that_a_resume_takes_over_from(stack: Stack) -> None:
    plan = stack.plan("watched", "challenger")
    held = stack.gray("rollout", "start", str(plan), "--until-stage", "1", "--output", "json")
    assert held.returncode == 3, held.stdout + held.stderr
    done = json.loads(held.stdout.strip().splitlines()[-1])
    rollout_id = done["rollout_id"]
    assert "a watcher (pid" in done["reason"]
    watcher_pid = int(done["reason"].split("a watcher (pid ", 1)[1].split(",", 1)[0])
    # The watcher judges the held stage: its looks reach the journal.
    deadline = time.monotonic() + 60
    events: list[str] = []
    while time.monotonic() < deadline:
        status = stack.gray("rollout", "status", rollout_id, "-o", "json")
        events = [e["event"] for e in json.loads(status.stdout)["events"]]
        if "watching" in events and "look" in events[events.index("watching") :]:
            break
        time.sleep(1)
    assert "watching" in events and "look" in events[events.index("watching") :], events
    assert stack.route()["route"]["weight"] == pytest.approx(0.3)
    resumed = stack.gray("rollout", "resume", rollout_id, "--output", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(watcher_pid):
        time.sleep(0.5)
    assert not _alive(watcher_pid), "the fenced watcher kept running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A finished child of a finished parent may linger as a zombie until reaped.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"
