"""A stage whose gates all pass ends after its min_dwell, on the dwell clock, with its numbers."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gray.cli.display import early_end
from gray.controller import loop
from gray.controller.state import Phase

from .conftest import PLAN, Harness

EARLY_PLAN = PLAN.replace("interval: 1s\n", "interval: 1s\nmin_dwell: 6s\n")


def early_events(harness: Harness) -> list[dict[str, float]]:
    events = harness.journal.load("fraud-test-0001").events
    return [e.data["early"] for e in events if e.event == "stage_passed_early"]


def test_stages_end_once_their_gates_pass_after_min_dwell_and_min_requests(
    tmp_path: Path,
) -> None:
    text = EARLY_PLAN.replace(
        "{weight: 100%, dwell: 10s}", "{weight: 100%, dwell: 10s, min_requests: 999999}"
    )
    harness = Harness(tmp_path, text)
    started = harness.clock.now()
    result = harness.runner().run(harness.start())
    early = early_events(harness)
    assert len(early) == 2
    for numbers in early:
        assert 6.0 <= numbers["elapsed_seconds"] < numbers["dwell_seconds"] == 20.0
        assert numbers["saved_seconds"] == 20.0 - numbers["elapsed_seconds"]
        assert numbers["min_dwell_seconds"] == 6.0
        assert numbers["candidate_requests"] > 0
    # Two stages took their min_dwell and a few looks rather than 40 s of dwell; the third
    # never reached its min_requests, so it ran its dwell and extension and failed by policy.
    assert harness.clock.now() - started < 20 + 10 + 10
    assert harness.events.count("stage_extended") == 1
    assert result.exit_code == 1 and "999,999" in result.reason
    stage_one = result.state.history[0]
    assert stage_one["outcome"] == "passed" and stage_one["early"] == early[0]
    assert "passed early after" in stage_one["reason"] and "saved" in stage_one["reason"]


def test_a_resumed_controller_ends_early_on_the_same_dwell_clock(tmp_path: Path) -> None:
    harness = Harness(tmp_path, EARLY_PLAN)
    runner = harness.runner()

    class Killed(Exception):
        pass

    def die_in_stage_one(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "look" and harness.events.count("look") == 3:  # type: ignore[attr-defined]
            raise Killed

    runner.on_event = die_in_stage_one
    with contextlib.suppress(Killed):
        runner.run(harness.start())
    record = harness.journal.load("fraud-test-0001")
    assert record.state.phase is Phase.RUNNING and record.state.stage == 0
    shown = early_end(harness.plan, record.state, harness.clock.now())
    assert shown == "ends early once every gate passes, after 3s more"
    harness.clock.sleep(2)  # down for two seconds: the dwell clock runs on
    resumed = record.state.with_(epoch=record.state.epoch + 1)
    harness.events.clear()
    result = harness.runner().run(loop.resume(harness.plan, resumed, harness.clock.now(), None))
    assert result.exit_code == 0
    assert harness.events.count("stage_started") == 2  # stage one was not started again
    events = harness.journal.load("fraud-test-0001").events
    ended = next(e for e in events if e.event == "stage_passed_early")
    # No pause: the dwell clock is the time since the stage's route was verified, the two
    # seconds without a controller included.
    started_at = record.state.stage_started_at
    assert started_at is not None
    assert ended.data["early"]["elapsed_seconds"] == ended.state["updated_at"] - started_at
    assert 6.0 <= ended.data["early"]["elapsed_seconds"] < 20.0


def test_a_pause_does_not_count_towards_min_dwell(harness: Harness) -> None:
    plan = Harness(Path("unused"), EARLY_PLAN).plan
    now = harness.clock.now()
    # Started five minutes ago, paused for all but five seconds of it: 15 s of dwell left.
    state = harness.state(
        phase=Phase.RUNNING, stage=0, stage_started_at=now - 300, deadline=now + 15
    )
    assert loop.dwell_elapsed(plan, state, now) == 5.0
    assert early_end(plan, state, now) == "ends early once every gate passes, after 1s more"
    assert early_end(plan, state, now + 1) == "ends at the first look where every gate passes"
    assert early_end(harness.plan, state, now) == ""  # no min_dwell: never early
    assert early_end(plan, state.with_(phase=Phase.PAUSED), now) == ""
