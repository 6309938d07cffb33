"""`Journal`: the local journal and the shared one read as one.

Two machines share a FakeRemoteJournal (kept the way the MLflow run keeps it) and each
has its own GRAY_HOME, as a controller and an operator on another host do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller.errors import JournalError, RolloutNotFoundError
from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.state import Phase, RolloutState
from tests.fakes import FakeRemoteJournal, rollout_state

ID = "fraud-20260101-000000-aaaa"
PLAN_TEXT = "name: loop-test\n"


class Machines:
    """Two machines' journals over one shared journal."""

    def __init__(self, tmp_path: Path) -> None:
        self.remote = FakeRemoteJournal()
        self.warnings: list[str] = []
        self.here = self.journal(tmp_path / "here")
        self.there = self.journal(tmp_path / "there")

    def journal(self, home: Path) -> Journal:
        return Journal(LocalJournal(home), self.remote, on_remote_error=self.warnings.append)


@pytest.fixture
def machines(tmp_path: Path) -> Machines:
    return Machines(tmp_path)


def state(**changes: object) -> RolloutState:
    return rollout_state(ID, **{"started_at": 1.0, "updated_at": 1.0, **changes})


def kinds(journal: Journal) -> list[str]:
    return [e.event for e in journal.load(ID).events]


def test_events_of_both_sides_are_merged_once_each_in_time_order(machines: Machines) -> None:
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(), EventKind.STARTED, "started", {})
    machines.here.append(state(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    # A resume on the other machine continues the shared journal's numbering.
    resumed = machines.there.append(state(phase=Phase.RUNNING), EventKind.RESUMED, "resumed", {})
    assert resumed.seq == 3
    record = machines.here.load(ID)
    assert [(e.seq, e.event) for e in record.events] == [
        (1, "started"),
        (2, "stage_started"),
        (3, "resumed"),
    ]
    assert [e.at for e in record.events] == sorted(e.at for e in record.events)
    assert record.plan_text == PLAN_TEXT


def test_the_newer_side_gives_the_state_of_a_running_rollout_with_its_judge(
    machines: Machines,
) -> None:
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(phase=Phase.RUNNING, judge={"n": 1}), EventKind.LOOK, "look", {})
    later = state(phase=Phase.RUNNING, judge={"n": 2}, updated_at=2.0)
    machines.there.append(later, EventKind.LOOK, "a look on the other machine", {})
    # The shared side's per-event copies leave the judge out; its latest state keeps it.
    assert machines.here.load(ID).state == later
    newest = state(phase=Phase.RUNNING, judge={"n": 3}, updated_at=3.0)
    machines.here.append(newest, EventKind.LOOK, "a look here again", {})
    assert machines.here.load(ID).state == newest


def test_the_first_end_wins_over_a_stale_controllers_later_looks(machines: Machines) -> None:
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    ended = state(phase=Phase.ROLLED_BACK, reason="rolled back by the pager")
    machines.there.append_terminal(ended, EventKind.ROLLED_BACK, ended.reason, {})
    machines.here.append(state(phase=Phase.RUNNING), EventKind.LOOK, "stale look", {})
    assert machines.here.load(ID).state.phase is Phase.ROLLED_BACK
    assert machines.there.load(ID).state.phase is Phase.ROLLED_BACK
    assert kinds(machines.here)[-2:] == ["rolled_back", "look"]


def test_a_promotion_undone_later_reads_reverted(machines: Machines) -> None:
    machines.here.create(state(), PLAN_TEXT)
    promoted = state(phase=Phase.PROMOTED, reason="promoted v2")
    machines.here.append_terminal(promoted, EventKind.PROMOTED, promoted.reason, {})
    reverted = state(phase=Phase.REVERTED, reason="reverted by the pager")
    machines.there.append(reverted, EventKind.REVERTED, reverted.reason, {})
    assert machines.here.load(ID).state.phase is Phase.REVERTED
    # Any other end after a promotion is a stale writer's: the promotion stands.
    late = state(phase=Phase.ROLLED_BACK, reason="a stale rollback")
    other = Journal(LocalJournal(Path(machines.here.local.root.parent) / "third"))
    other.create(state(), PLAN_TEXT)
    other.append(promoted, EventKind.PROMOTED, promoted.reason, {})
    other.append(late, EventKind.ROLLED_BACK, late.reason, {})
    assert other.load(ID).state.phase is Phase.PROMOTED


def test_an_unreachable_shared_journal_leaves_the_local_one_answering(
    machines: Machines,
) -> None:
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    machines.here.post_command(ID, "approve")
    machines.remote.failing = {"load", "list_states", "commands"}
    record = machines.here.load(ID)
    assert record.state.phase is Phase.RUNNING and len(record.events) == 1
    assert [s.rollout_id for s in machines.here.list_states("fraud")] == [ID]
    assert [c.command for c in machines.here.commands(ID)] == ["approve"]
    assert len(machines.warnings) == 3
    assert all("MLflow unreachable" in w for w in machines.warnings), machines.warnings
    # With nothing on this machine, the shared journal's failure is the answer.
    with pytest.raises(JournalError, match="cannot read rollout"):
        machines.there.load(ID)


def test_a_rollout_in_neither_journal_is_not_found(machines: Machines) -> None:
    with pytest.raises(RolloutNotFoundError, match=ID):
        machines.here.load(ID)


def test_a_failed_shared_write_is_sent_with_the_next_event_in_order(machines: Machines) -> None:
    machines.here.create(state(), PLAN_TEXT)
    machines.remote.failing = {"append"}
    machines.here.append(state(), EventKind.STARTED, "started", {})
    machines.here.append(state(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    assert kinds(Journal(LocalJournal(machines.here.local.root.parent))) == [
        "started",
        "stage_started",
    ]
    assert machines.remote.runs[ID].events == []
    assert len(machines.warnings) == 2 and "will retry" in machines.warnings[0]
    machines.remote.failing = set()
    machines.here.append(state(phase=Phase.RUNNING), EventKind.LOOK, "look", {})
    assert [e.seq for e in machines.remote.runs[ID].events] == [1, 2, 3]


def test_a_shared_journal_that_refuses_the_rollout_or_a_command_says_so(
    machines: Machines,
) -> None:
    machines.remote.failing = {"create"}
    with pytest.raises(JournalError, match="cannot create the rollout's MLflow run"):
        machines.here.create(state(), PLAN_TEXT)
    machines.remote.failing = set()
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(), EventKind.STARTED, "started", {})
    machines.remote.failing = {"post_command"}
    with pytest.raises(JournalError, match="cannot post pause to MLflow"):
        machines.here.post_command(ID, "pause", "spike")
    # The local journal took the command before MLflow refused it.
    machines.remote.failing = set()
    assert [c.command for c in machines.here.commands(ID)] == ["pause"]


def test_listing_takes_the_newer_or_ended_state_of_each_rollout(machines: Machines) -> None:
    other_id = "fraud-20260101-000001-bbbb"
    machines.here.create(state(), PLAN_TEXT)
    machines.here.append(state(phase=Phase.RUNNING, updated_at=5.0), EventKind.LOOK, "look", {})
    ended = state(phase=Phase.ABORTED, updated_at=2.0, reason="aborted elsewhere")
    machines.remote.runs[ID].latest = ended.to_dict()  # ended on a machine that kept no file
    elsewhere = rollout_state(other_id, started_at=9.0, updated_at=9.0)
    machines.there.create(elsewhere, PLAN_TEXT)
    listed = machines.here.list_states("fraud")
    assert [(s.rollout_id, s.phase) for s in listed] == [
        (other_id, Phase.STARTING),
        (ID, Phase.ABORTED),
    ]
    assert machines.here.active_for("fraud") == [elsewhere]
