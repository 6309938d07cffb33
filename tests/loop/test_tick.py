"""`loop.tick` as a table: (phase, observation) -> (new phase, actions in order).

Each row starts from a state of the loop-test plan (tests/loop/conftest.py: three
stages of 20 s, 20 s and 10 s, one error-rate gate, an inconclusive stage extended
once by 10 s then failed, no data held 5 s) and gives one observation. The actions are
written compactly: `("Record", "look")`, `("Stop", 4)`, `("ApplyStage", 0.5)`, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gray.controller import loop
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import Plan
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied, Lease, RouteSpec, Snapshot, VersionCounters
from tests.fakes import rollout_state

from .conftest import PLAN

ID = "fraud-tick-0001"
PLAN_MODEL = parse_plan(PLAN, "plan.yaml", environ={})
HOOKED = parse_plan(
    PLAN + 'hooks:\n  pre_rollout: {url: "http://127.0.0.1:9/smoke"}\n'
    '  post_stage: {url: "http://127.0.0.1:9/post"}\n',
    "plan.yaml",
    environ={},
)
T0 = 1_000.0  # when the first stage's route was verified
ORIGIN = Snapshot(taken_at=T0)


def counts(taken_at: float, candidate: tuple[int, int], baseline: tuple[int, int]) -> Snapshot:
    """Cumulative (requests, errors) of each version since the stage began."""
    return Snapshot(
        taken_at=taken_at,
        baseline=VersionCounters(requests=baseline[0], errors=baseline[1]),
        candidate=VersionCounters(requests=candidate[0], errors=candidate[1]),
    )


ALIKE = counts(T0 + 5, (2_000, 20), (18_000, 180))  # too few to tell
WORSE = counts(T0 + 5, (2_000, 400), (18_000, 180))  # 20 % errors against 1 %
SAME_MANY = counts(T0 + 25, (2_000_000, 20_000), (18_000_000, 180_000))  # plenty, alike
SILENT = counts(T0 + 25, (0, 0), (18_000, 180))  # the candidate got no traffic


def starting(stage: int = 0, **changes: Any) -> RolloutState:
    return rollout_state(ID, started_at=T0, updated_at=T0, stage=stage, **changes)


def running(**changes: Any) -> RolloutState:
    """Stage 1 routed at T0 and judged from the ORIGIN snapshot; dwell ends at T0 + 20."""
    route = Applied(loop.stage_route(PLAN_MODEL, starting(), 0), Lease(ID, 1))
    step = loop.tick(PLAN_MODEL, starting(), loop.StageRouted(T0, route, ORIGIN, fresh=True))
    return step.state.with_(**changes)


def lease(rollout_id: str, epoch: int, weight: float = 0.0) -> Applied:
    return Applied(RouteSpec(baseline="1", candidate="2", weight=weight), Lease(rollout_id, epoch))


def command(name: str) -> loop.CommandReceived:
    return loop.CommandReceived(T0 + 3, name, "alice@host")


def compact(action: loop.Action) -> tuple[Any, ...] | str:
    match action:
        case loop.Record():
            return ("Record", action.event)
        case loop.Stop():
            return ("Stop", action.exit_code)
        case loop.Notify():
            return ("Notify", action.event)
        case loop.ApplyStage():
            return ("ApplyStage", action.route.weight)
        case loop.CallHook():
            return ("CallHook", action.hook)
    return type(action).__name__


@dataclass(frozen=True)
class Row:
    name: str
    state: RolloutState
    seen: loop.Observation
    phase: Phase
    actions: list[tuple[Any, ...] | str]
    plan: Plan = PLAN_MODEL


ROWS = [
    Row("an ended rollout ignores everything", running(phase=Phase.ROLLED_BACK),
        loop.Look(T0 + 1, WORSE), Phase.ROLLED_BACK, []),
    Row("a routed stage starts its dwell", starting(),
        loop.StageRouted(T0, lease(ID, 1, 0.1), ORIGIN, fresh=True), Phase.RUNNING,
        [("Record", "stage_started"), ("Notify", "stage")]),
    Row("a resumed stage's route is only re-confirmed", running(),
        loop.StageRouted(T0 + 9, lease(ID, 2, 0.1), ORIGIN, fresh=False), Phase.RUNNING,
        [("Record", "route_verified")]),
    Row("a look within the dwell records its numbers", running(),
        loop.Look(T0 + 5, ALIKE), Phase.RUNNING, [("Record", "look")]),
    Row("a failing gate rolls back at once", running(),
        loop.Look(T0 + 5, WORSE), Phase.ROLLING_BACK,
        [("Record", "look"), ("Record", "gate_failed"), "Rollback"]),
    Row("a paused stage keeps judging", running(phase=Phase.PAUSED),
        loop.Look(T0 + 5, WORSE), Phase.ROLLING_BACK,
        [("Record", "look"), ("Record", "gate_failed"), "Rollback"]),
    Row("a clean stage passes at the end of its dwell", running(),
        loop.Look(T0 + 25, SAME_MANY), Phase.STARTING,
        [("Record", "look"), ("Record", "stage_passed"), ("ApplyStage", 0.5)]),
    Row("a passed stage asks its post_stage hook first", running(),
        loop.Look(T0 + 25, SAME_MANY), Phase.RUNNING,
        [("Record", "look"), ("Record", "stage_passed"), ("CallHook", "post_stage")], HOOKED),
    Row("an inconclusive dwell is extended once", running(),
        loop.Look(T0 + 21, ALIKE), Phase.RUNNING,
        [("Record", "look"), ("Record", "stage_extended")]),
    Row("then the plan says fail", running(extensions=1),
        loop.Look(T0 + 21, ALIKE), Phase.ROLLING_BACK,
        [("Record", "look"), ("Record", "gate_failed"), "Rollback"]),
    Row("no data at the end of the dwell holds", running(),
        loop.Look(T0 + 25, SILENT), Phase.RUNNING,
        [("Record", "look"), ("Record", "nodata_hold")]),
    Row("no data past the hold fails", running(nodata_since=T0 + 19),
        loop.Look(T0 + 25, SILENT), Phase.ROLLING_BACK,
        [("Record", "look"), ("Record", "gate_failed"), "Rollback"]),
    Row("a failing metrics source is noted", running(),
        loop.Look(T0 + 5, None, metrics_error="timeout"), Phase.RUNNING,
        [("Record", "metrics_error")]),
    Row("past its grace it stops with traffic held", running(metrics_failing_since=T0),
        loop.Look(T0 + 31, None, metrics_error="timeout"), Phase.RUNNING,
        [("Record", "metrics_lost"), ("Stop", 4)]),
    Row("an operator's rollback seen at a look ends it", running(),
        loop.Look(T0 + 5, ALIKE, route=lease(ID, 2)), Phase.ROLLED_BACK,
        [("Record", "superseded"), ("Stop", 1)]),
    Row("another rollout's lease stops it untouched", running(),
        loop.Look(T0 + 5, ALIKE, route=lease("other", 7, 0.3)), Phase.RUNNING,
        [("Record", "superseded"), ("Stop", 4)]),
    Row("a resumed controller's lease stops it silently", running(),
        loop.Look(T0 + 5, ALIKE, route=lease(ID, 2, 0.1)), Phase.RUNNING, [("Stop", 4)]),
    Row("a lost endpoint stops with exit 4", running(),
        loop.EndpointLost(T0 + 5, "connection refused"), Phase.RUNNING,
        [("Record", "endpoint_lost"), ("Stop", 4)]),
    Row("a lost lease with no route read stops", running(),
        loop.LeaseLost(T0 + 5, None, "409"), Phase.RUNNING,
        [("Record", "superseded"), ("Stop", 4)]),
    Row("pause", running(), command("pause"), Phase.PAUSED,
        [("Record", "paused"), ("Notify", "pause")]),
    Row("unpause", running(phase=Phase.PAUSED, dwell_left=7.0), command("unpause"),
        Phase.RUNNING, [("Record", "unpaused")]),
    Row("approve while running is ignored", running(), command("approve"), Phase.RUNNING,
        [("Record", "command_ignored")]),
    Row("approve moves on", running(phase=Phase.WAITING_APPROVAL), command("approve"),
        Phase.STARTING, [("Record", "approved"), ("ApplyStage", 0.5)]),
    Row("abort", running(), command("abort"), Phase.ROLLING_BACK,
        [("Record", "abort_requested"), "Rollback"]),
    Row("abort while rolling back is ignored", running(phase=Phase.ROLLING_BACK),
        command("abort"), Phase.ROLLING_BACK, [("Record", "command_ignored")]),
    Row("promote now", running(), command("promote"), Phase.PROMOTING,
        [("Record", "promote_override"), "Promote"]),
    Row("an unknown command is ignored", running(), command("dance"), Phase.RUNNING,
        [("Record", "command_ignored")]),
    Row("the rollback landed", running(phase=Phase.ROLLING_BACK, rollback_kind="rolled_back"),
        loop.RolledBack(T0 + 6, lease(ID, 1)), Phase.ROLLED_BACK,
        [("Record", "rolled_back"), ("Notify", "rollback"), ("Stop", 1)]),
    Row("the abort landed", running(phase=Phase.ROLLING_BACK, rollback_kind="aborted"),
        loop.RolledBack(T0 + 6, lease(ID, 1)), Phase.ABORTED,
        [("Record", "aborted"), ("Notify", "abort"), ("Stop", 1)]),
    Row("the promotion landed", running(phase=Phase.PROMOTING),
        loop.Promoted(T0 + 6, ({"alias": "champion", "to_version": "2"},)), Phase.PROMOTED,
        [("Record", "promoted"), ("Notify", "promote"), ("Stop", 0)]),
    Row("a refused smoke test stops before any traffic", starting(),
        loop.HookAnswered(T0, loop.CallHook("pre_rollout"), False, "smoke failed", 500),
        Phase.ABORTED, [("Record", "aborted"), ("Stop", 2)], HOOKED),
    Row("a passed smoke test routes the first stage", starting(),
        loop.HookAnswered(T0, loop.CallHook("pre_rollout"), True, "smoke passed", 200),
        Phase.STARTING,
        [("Record", "hook_passed"), ("Notify", "start"), ("ApplyStage", 0.1)], HOOKED),
    Row("a refused post_stage hook rolls back", running(),
        loop.HookAnswered(T0 + 21, loop.CallHook("post_stage", 0), False, "no", 409),
        Phase.ROLLING_BACK, [("Record", "hook_failed"), ("Record", "hook_rollback"), "Rollback"],
        HOOKED),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_tick(row: Row) -> None:
    step = loop.tick(row.plan, row.state, row.seen)
    assert step.state.phase is row.phase, step.state.reason
    assert [compact(action) for action in step.actions] == row.actions


def test_every_step_that_changes_the_phase_records_it_first() -> None:
    for row in ROWS:
        step = loop.tick(row.plan, row.state, row.seen)
        if step.state.phase is not row.state.phase:
            assert isinstance(step.actions[0], loop.Record), row.name


def test_a_look_changes_only_what_the_gates_and_the_stage_count_own() -> None:
    before = running()
    after = loop.tick(PLAN_MODEL, before, loop.Look(T0 + 5, ALIKE)).state
    assert after.stage_candidate_requests == 2_000
    assert after.judge != before.judge and after.last_verdict is not None
    assert (after.last_look_at, after.updated_at) == (T0 + 5, T0 + 5)
    unchanged = {"judge", "last_verdict", "stage_candidate_requests", "last_look_at", "updated_at"}
    assert {key: value for key, value in after.to_dict().items() if key not in unchanged} == {
        key: value for key, value in before.to_dict().items() if key not in unchanged
    }
