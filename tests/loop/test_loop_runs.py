"""The stage loop driven tick by tick with a fake clock, router, metrics and registry."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gray.controller import loop
from gray.controller.state import Phase
from gray.controller.types import Applied, Lease
from tests.fakes import VersionBehaviour

from .conftest import PLAN, Harness


def weights(harness: Harness) -> list[float]:
    return [w.route.weight for w in harness.router.writes]


def test_good_candidate_walks_every_stage_and_is_promoted(harness: Harness) -> None:
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0, result.reason
    assert result.state.phase is Phase.PROMOTED
    # 10 %, 50 %, 100 %, then the candidate becomes the endpoint's baseline.
    assert weights(harness) == [0.1, 0.5, 1.0, 0.0]
    assert harness.router.applied.route.baseline == "2"
    assert harness.registry.aliases == {"champion": "2", "previous-champion": "1"}
    assert harness.events.count("stage_started") == 3
    assert harness.events.count("stage_passed") == 3
    assert harness.events[-1] == "promoted"
    assert "@champion → v2" in result.reason


def test_bad_candidate_is_rolled_back_in_one_write(harness: Harness) -> None:
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.05)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert result.state.phase is Phase.ROLLED_BACK
    # Stage 1 at 10 %, then straight to 0 %: never walked back through stages.
    assert weights(harness) == [0.1, 0.0]
    assert harness.router.applied.route.mirror == 0
    assert "error" in result.reason and "FAIL" in result.reason
    assert harness.registry.rolled_back == [("fraud", "2", "fraud-test-0001")]
    assert harness.registry.aliases == {"champion": "1"}
    # The decision was journaled with its numbers before the rollback write.
    assert harness.events.index("gate_failed") < harness.events.index("rolled_back")


def test_rollback_happens_within_a_few_looks_of_a_regression(harness: Harness) -> None:
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.10)
    start = harness.clock.now()
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert harness.clock.now() - start < 10


def test_inconclusive_stage_is_extended_then_failed_by_policy(tmp_path: Path) -> None:
    text = PLAN.replace(
        "{weight: 10%, dwell: 20s}", "{weight: 10%, dwell: 20s, min_requests: 999999}"
    )
    harness = Harness(tmp_path, text)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert harness.events.count("stage_extended") == 1
    assert "inconclusive" in result.reason and "plan says fail" in result.reason
    assert "999,999" in result.reason


def test_inconclusive_stage_can_pass_by_policy(tmp_path: Path) -> None:
    text = PLAN.replace(
        "{weight: 10%, dwell: 20s}", "{weight: 10%, dwell: 20s, min_requests: 999999}"
    )
    text = text.replace("then: fail", "then: pass")
    harness = Harness(tmp_path, text)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0
    assert "plan says pass" in str(harness.journal.load("fraud-test-0001").events)


def test_no_data_holds_then_fails(harness: Harness) -> None:
    harness.metrics.silent_candidate = True
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert "nodata_hold" in harness.events
    assert "no data for the candidate" in result.reason


def test_metrics_source_down_exits_4_with_traffic_held(harness: Harness) -> None:
    step = harness.start()
    runner = harness.runner()

    def break_after_stage_start(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "stage_started":  # type: ignore[attr-defined]
            harness.metrics.broken = True

    runner.on_event = break_after_stage_start
    result = runner.run(step)
    assert result.exit_code == 4
    assert result.state.phase is Phase.RUNNING
    assert harness.router.applied.route.weight == 0.1  # left as last verified
    assert "metrics_lost" in harness.events


def test_endpoint_down_on_first_write_exits_4_and_changes_nothing(harness: Harness) -> None:
    harness.router.fail_next = 1
    result = harness.runner().run(harness.start())
    assert result.exit_code == 4
    assert result.state.phase is Phase.STARTING
    assert harness.router.writes == []


def test_approval_holds_traffic_until_approved(tmp_path: Path) -> None:
    text = PLAN.replace("{weight: 10%, dwell: 20s}", "{weight: 10%, dwell: 20s, approval: true}")
    harness = Harness(tmp_path, text)
    runner = harness.runner()
    approved_at: list[float] = []

    def approve_later(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "waiting_approval":  # type: ignore[attr-defined]
            harness.clock.sleep(120)  # a person reads samples for two minutes
            approved_at.append(harness.clock.now())
            harness.journal.post_command("fraud-test-0001", "approve", "samples look right")

    runner.on_event = approve_later
    result = runner.run(harness.start())
    assert result.exit_code == 0
    assert harness.events.index("waiting_approval") < harness.events.index("approved")
    assert weights(harness) == [0.1, 0.5, 1.0, 0.0]


def test_approval_with_exit_on_hold_exits_3_and_resume_continues(tmp_path: Path) -> None:
    text = PLAN.replace("{weight: 10%, dwell: 20s}", "{weight: 10%, dwell: 20s, approval: true}")
    harness = Harness(tmp_path, text)
    result = harness.runner(exit_on_hold=True).run(harness.start())
    assert result.exit_code == 3
    assert result.state.phase is Phase.WAITING_APPROVAL
    harness.journal.post_command("fraud-test-0001", "approve")
    record = harness.journal.load("fraud-test-0001")
    resumed = record.state.with_(epoch=record.state.epoch + 1)
    result = harness.runner().run(loop.resume(harness.plan, resumed, harness.clock.now(), None))
    assert result.exit_code == 0
    assert harness.events.count("approved") == 1


def test_pause_stops_the_dwell_clock(harness: Harness) -> None:
    runner = harness.runner()
    marks: dict[str, float] = {}

    def pause_once(event: object) -> None:
        name = event.event  # type: ignore[attr-defined]
        harness.events.append(name)
        if name == "stage_started" and "paused" not in marks:
            marks["paused"] = harness.clock.now()
            harness.journal.post_command("fraud-test-0001", "pause")
        if name == "paused":
            harness.clock.sleep(300)
            harness.journal.post_command("fraud-test-0001", "unpause")

    runner.on_event = pause_once
    result = runner.run(harness.start())
    assert result.exit_code == 0
    assert harness.events.index("paused") < harness.events.index("unpaused")
    assert harness.clock.now() - marks["paused"] >= 300 + 20 + 20 + 10


def test_abort_rolls_back_and_is_marked_aborted(harness: Harness) -> None:
    runner = harness.runner()

    def abort_in_stage_two(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "stage_started" and harness.events.count("stage_started") == 2:  # type: ignore[attr-defined]
            harness.journal.post_command("fraud-test-0001", "abort", "pager went off")

    runner.on_event = abort_in_stage_two
    result = runner.run(harness.start())
    assert result.exit_code == 1
    assert result.state.phase is Phase.ABORTED
    assert weights(harness) == [0.1, 0.5, 0.0]
    assert "pager went off" in result.reason


def test_promote_override_skips_remaining_stages(harness: Harness) -> None:
    step = harness.start()
    harness.journal.post_command("fraud-test-0001", "promote", "hotfix must ship")
    result = harness.runner().run(step)
    assert result.exit_code == 0
    assert "promote_override" in harness.events
    assert harness.registry.aliases["champion"] == "2"


def test_until_stage_holds_and_resume_finishes(harness: Harness) -> None:
    result = harness.runner().run(harness.start(until_stage=0))
    assert result.exit_code == 3
    assert result.state.phase is Phase.HELD
    assert weights(harness) == [0.1]
    record = harness.journal.load("fraud-test-0001")
    resumed = record.state.with_(epoch=record.state.epoch + 1)
    result = harness.runner().run(loop.resume(harness.plan, resumed, harness.clock.now(), None))
    assert result.exit_code == 0
    assert weights(harness) == [0.1, 0.5, 1.0, 0.0]


def test_operator_rollback_fences_the_running_controller(harness: Harness) -> None:
    runner = harness.runner()

    def operator_rolls_back(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "stage_started" and harness.events.count("stage_started") == 2:  # type: ignore[attr-defined]
            harness.router.rollback(Lease("operator", 0))

    runner.on_event = operator_rolls_back
    result = runner.run(harness.start())
    assert result.exit_code == 1
    assert result.state.phase is Phase.ROLLED_BACK
    assert "superseded" in harness.events
    # After the operator's write, the controller wrote nothing more.
    assert weights(harness) == [0.1, 0.5, 0.0]
    assert harness.router.applied.lease.rollout_id == "operator"


def test_crash_mid_stage_resumes_with_the_dwell_left(harness: Harness) -> None:
    runner = harness.runner()

    class Killed(Exception):
        pass

    def die_mid_stage_two(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if (
            event.event == "look"
            and harness.events.count("stage_started") == 2
            and harness.events.count("look") > 25
        ):  # type: ignore[attr-defined]
            raise Killed

    runner.on_event = die_mid_stage_two
    with contextlib.suppress(Killed):
        runner.run(harness.start())
    crashed_at = harness.clock.now()
    record = harness.journal.load("fraud-test-0001")
    assert record.state.phase is Phase.RUNNING and record.state.stage == 1
    deadline = record.state.deadline
    harness.clock.sleep(3)  # the controller is down for three seconds
    resumed = record.state.with_(epoch=record.state.epoch + 1)
    harness.events.clear()
    result = harness.runner().run(loop.resume(harness.plan, resumed, harness.clock.now(), None))
    assert result.exit_code == 0
    # Stage two was not restarted: its route was re-confirmed, not started again.
    assert harness.events.count("stage_started") == 1  # only stage three
    assert "route_verified" in harness.events
    assert deadline is not None and deadline - crashed_at < 20
    assert weights(harness) == [0.1, 0.5, 0.5, 1.0, 0.0]
    assert harness.router.writes[2].lease == Lease("fraud-test-0001", 2)


def test_journal_holds_every_decision_with_numbers(harness: Harness) -> None:
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.05)
    harness.runner().run(harness.start())
    record = harness.journal.load("fraud-test-0001")
    kinds = [e.event for e in record.events]
    assert kinds[0] == "started" and kinds[-1] == "rolled_back"
    looks = [e for e in record.events if e.event == "look"]
    assert looks and all("verdict" in e.data for e in looks)
    failed = next(e for e in record.events if e.event == "gate_failed")
    assert any(ch.isdigit() for ch in failed.reason)
    assert record.state.phase is Phase.ROLLED_BACK


def test_shadow_stage_is_judged_on_mirrored_pairs(tmp_path: Path) -> None:
    text = PLAN.replace(
        "  - {weight: 10%, dwell: 20s}\n",
        "  - {name: shadow, mirror: 50%, dwell: 20s, gates: [{metric: disagreement, max: 5%}]}\n"
        "  - {weight: 10%, dwell: 20s}\n",
    )
    harness = Harness(tmp_path, text)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0, result.reason
    record = harness.journal.load("fraud-test-0001")
    shadow_pass = next(e for e in record.events if e.event == "stage_passed")
    gates = {v["gate"] for v in shadow_pass.data["verdict"]["verdicts"]}
    assert "disagreement" in gates and "error_rate" in gates
    assert [round(w.route.mirror, 2) for w in harness.router.writes][:2] == [0.5, 0.0]


def test_a_shadow_candidate_that_crashes_is_rolled_back_before_users_see_it(tmp_path: Path) -> None:
    text = PLAN.replace(
        "  - {weight: 10%, dwell: 20s}\n",
        "  - {name: shadow, mirror: 50%, dwell: 20s}\n  - {weight: 10%, dwell: 20s}\n",
    )
    harness = Harness(tmp_path, text)
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.2)
    result = harness.runner().run(harness.start())
    assert result.exit_code == 1
    assert weights(harness) == [0.0, 0.0]  # it never answered a user
    assert "shadow" in result.reason


def test_an_alias_moved_mid_rollout_is_reported_and_the_pins_hold(harness: Harness) -> None:
    runner = harness.runner()
    warnings: list[str] = []
    runner.on_warning = warnings.append

    def move_alias_in_stage_one(event: object) -> None:
        harness.events.append(event.event)  # type: ignore[attr-defined]
        if event.event == "stage_started" and harness.events.count("stage_started") == 1:  # type: ignore[attr-defined]
            harness.registry.aliases["challenger"] = "7"

    runner.on_event = move_alias_in_stage_one
    result = runner.run(harness.start())
    assert result.exit_code == 0
    assert harness.events.count("alias_moved") == 1
    assert any("moved from version 2 to 7" in w for w in warnings)
    assert {w.route.candidate for w in harness.router.writes[:3]} == {"2"}


def test_an_endpoint_restart_mid_stage_does_not_fail_a_good_candidate(tmp_path: Path) -> None:
    # The endpoint's counters start again from zero, as after a gateway restart and a resume.
    text = PLAN.replace("{weight: 50%, dwell: 20s}", "{weight: 50%, dwell: 20s, min_requests: 500}")
    harness = Harness(tmp_path, text)
    restart_at = harness.clock.now() + 38  # late in the second stage (20 s to 40 s)
    read = harness.metrics.snapshot
    restarted: list[bool] = []

    def snapshot_across_a_restart(versions):  # type: ignore[no-untyped-def]
        if not restarted and harness.clock.now() >= restart_at:
            restarted.append(True)
            harness.metrics._totals.clear()
        return read(versions)

    harness.metrics.snapshot = snapshot_across_a_restart  # type: ignore[method-assign]
    result = harness.runner().run(harness.start())
    assert restarted
    assert result.exit_code == 0, result.reason
    reasons = [e.reason for e in harness.journal.load("fraud-test-0001").events]
    assert not [r for r in reasons if "only -" in r], reasons


def test_a_held_stage_keeps_being_judged_and_a_fail_still_rolls_back(harness: Harness) -> None:
    held = harness.runner().run(harness.start(until_stage=0))
    assert held.exit_code == 3 and held.state.phase is Phase.HELD
    # The watcher left behind: same stage, new epoch, judging on.
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.2)
    watcher = held.state.with_(epoch=held.state.epoch + 1)
    step = loop.resume(harness.plan, watcher, harness.clock.now(), None, watch=True)
    result = harness.runner().run(step)
    assert result.exit_code == 1, result.reason
    assert result.state.phase is Phase.ROLLED_BACK
    assert "watching" in harness.events
    assert weights(harness) == [0.1, 0.1, 0.0]  # held at 10 %, never moved on, then rolled back


def test_a_watcher_fenced_by_a_resume_stops_without_touching_the_journal(
    harness: Harness,
) -> None:
    held = harness.runner().run(harness.start(until_stage=0))
    watcher = held.state.with_(epoch=held.state.epoch + 1)
    step = loop.resume(harness.plan, watcher, harness.clock.now(), None, watch=True)
    runner = harness.runner()
    # `gray rollout resume` takes over under a newer epoch of the same rollout.
    harness.router.applied = Applied(
        harness.router.applied.route, Lease("fraud-test-0001", watcher.epoch + 1)
    )
    before = len(harness.journal.load("fraud-test-0001").events)
    result = runner.run(step)
    assert result.exit_code == 4 and "stops writing" in result.reason
    events = harness.journal.load("fraud-test-0001").events
    assert [e.event for e in events[before:]] == ["watching"]
