"""The operator's rollback (controller/operator.py) piece by piece: finding the rollout in the
local journal, the one fenced write, and the bookkeeping after it. The endpoint and the
registry are the fakes of tests/fakes.py; the journal is a real local one."""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller.errors import RolloutAlreadyPromotedError
from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.operator import (
    find_local_rollout,
    newest_rollout,
    record_rollback,
    rollback_endpoint,
)
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied, Lease, RouteSpec
from tests.fakes import FakeRegistry, FakeRouter, rollout_state

ID = "fraud-20260101-000000-aaaa"


def journaled(home: Path, rollout_id: str, started_at: float, phase: Phase) -> RolloutState:
    state = rollout_state(rollout_id, started_at=started_at, phase=phase)
    journal = Journal(LocalJournal(home))
    journal.create(state, "name: loop-test\n")
    journal.append(state, EventKind.STARTED, "started", {})
    return state


def running_router(state: RolloutState) -> FakeRouter:
    router = FakeRouter(baseline=state.baseline)
    split = RouteSpec(baseline=state.baseline, candidate=state.candidate, weight=0.2)
    router.applied = Applied(split, Lease(state.rollout_id, state.epoch))
    return router


def test_a_model_names_its_newest_active_rollout_else_its_newest(tmp_path: Path) -> None:
    local = LocalJournal(tmp_path)
    old = journaled(tmp_path, "fraud-20260101-000000-0001", 1.0, Phase.RUNNING)
    journaled(tmp_path, "fraud-20260102-000000-0002", 2.0, Phase.ROLLED_BACK)
    journaled(tmp_path, "fraudster-20260103-000000-0003", 3.0, Phase.RUNNING)  # another model
    assert find_local_rollout(local, "fraud") == old
    assert find_local_rollout(local, "fraud-20260102-000000-0002").phase is Phase.ROLLED_BACK
    assert find_local_rollout(local, "nothing") is None
    ended = [old.with_(phase=Phase.ABORTED), old.with_(rollout_id="b", started_at=5.0)]
    assert newest_rollout([ended[0]]) == ended[0]
    assert newest_rollout(ended) == ended[1]
    assert newest_rollout([]) is None


def test_the_rollback_is_one_write_under_a_newer_lease(tmp_path: Path) -> None:
    state = rollout_state(ID, phase=Phase.RUNNING, epoch=3)
    router = running_router(state)
    applied, seconds = rollback_endpoint(router, state)
    assert applied.route.weight == 0 and applied.route.mirror == 0
    assert applied.lease == Lease(ID, 4) and len(router.writes) == 1
    assert seconds >= 0


def test_a_promoted_rollout_is_refused_before_the_write(tmp_path: Path) -> None:
    state = rollout_state(ID, phase=Phase.RUNNING)
    router = FakeRouter(baseline=state.candidate)  # the promotion's write landed
    with pytest.raises(RolloutAlreadyPromotedError, match="--to previous"):
        rollback_endpoint(router, state)
    assert router.writes == []
    with pytest.raises(RolloutAlreadyPromotedError):
        rollback_endpoint(router, state.with_(phase=Phase.PROMOTED))


def test_the_bookkeeping_journals_one_end_and_tags_the_candidate(tmp_path: Path) -> None:
    state = journaled(tmp_path, ID, 1.0, Phase.RUNNING)
    journal = Journal(LocalJournal(tmp_path))
    registry = FakeRegistry()
    applied, _ = rollback_endpoint(running_router(state), state)
    options = {"router": None, "journal": journal, "plan": None, "to_previous": False}
    first = record_rollback(
        applied, registry=registry, state=state, reason="pager", kind=EventKind.ABORTED, **options
    )
    assert first.event is not None and first.event.event is EventKind.ABORTED
    assert first.ended_before is None and first.warnings == ()
    assert "aborted by " in first.event.reason and "pager" in first.event.reason
    assert registry.rolled_back == [("fraud", "2", ID)]
    assert journal.load(ID).state.epoch == applied.lease.epoch  # type: ignore[union-attr]
    # A second rollback finds the end already journaled and writes nothing.
    again = record_rollback(applied, registry=registry, state=state, reason="", **options)
    assert again.event is None
    assert again.ended_before is not None and again.ended_before.phase is Phase.ABORTED
    assert registry.rolled_back == [("fraud", "2", ID)]
    ends = [e for e in journal.load(ID).events if e.event is EventKind.ABORTED]
    assert len(ends) == 1
