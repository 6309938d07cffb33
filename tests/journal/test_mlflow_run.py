"""The journal's MLflow run, against a real sqlite MLflow store: damaged records are skipped
with a warning, and the full latest state reaches another machine however the events went."""

from __future__ import annotations

from pathlib import Path

from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.journal.mlflow_run import MlflowJournal
from gray.controller.journal.sync import sync_to_remote
from gray.controller.state import Phase
from tests.fakes import rollout_state

GOOD = "fraud-20260101-000000-good"
BAD = "fraud-20260101-000001-bad0"
PLAN_TEXT = "name: loop-test\n"
JUDGE = {"gates": [{"gate": "error_rate", "working_set": list(range(50))}]}


def test_a_damaged_record_in_the_mlflow_journal_is_skipped_with_a_warning(
    fresh_registry: object, tmp_path: Path
) -> None:
    # A record in the shared journal damaged by a foreign or crashed writer must not hide
    # the rollout (or every rollout) from another machine's `rollback`, `status` or `list`.
    warnings: list[str] = []
    remote = MlflowJournal(fresh_registry.registry().client, warnings.append)  # type: ignore[attr-defined]
    journal = Journal(LocalJournal(tmp_path / "home"), remote)
    state = rollout_state(GOOD)
    journal.create(state, PLAN_TEXT)
    journal.append(state, EventKind.STARTED, "started", {})
    journal.append(state.with_(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    other = rollout_state(BAD)
    journal.create(other, PLAN_TEXT)
    journal.append(other, EventKind.STARTED, "started", {})
    client = remote.client
    run_id = remote._run_id(GOOD)
    first = sorted(f.path for f in client.list_artifacts(run_id, "events"))[0]
    client.log_text(run_id, '{"seq": 1}', first)  # a record without its state
    client.set_tag(run_id, "gray.command.x1", "{not json")
    client.set_tag(remote._run_id(BAD), "gray.summary", '{"phase": "warp"}')

    record = MlflowJournal(fresh_registry.registry().client, warnings.append).load(GOOD)  # type: ignore[attr-defined]
    assert record is not None
    assert [e.event for e in record.events] == ["stage_started"]
    assert record.state.phase is Phase.RUNNING
    assert remote.commands(GOOD) == []
    listed = [s.rollout_id for s in remote.list_states("fraud")]
    assert listed == [GOOD]
    assert any(first in w and "damaged" in w for w in warnings), warnings
    assert any("gray.command.x1" in w for w in warnings), warnings
    assert any("gray.summary" in w for w in warnings), warnings


def test_events_sent_late_from_the_local_journal_carry_the_judge_to_another_machine(
    fresh_registry: object, tmp_path: Path
) -> None:
    # A controller whose MLflow writes timed out leaves `gray rollout sync` to send them.
    # The local lines hold numbers only; the newest one must still reach MLflow whole, or
    # a resume on another machine would find a running stage without its gates' state.
    local = Journal(LocalJournal(tmp_path / "home"))
    running = rollout_state(GOOD, phase=Phase.RUNNING, started_at=1.0, updated_at=1.0)
    local.create(running, PLAN_TEXT)
    local.append(running, EventKind.STARTED, "started", {})
    for look in range(3):
        judged = running.with_(judge={**JUDGE, "looks": look}, updated_at=2.0 + look)
        local.append(judged, EventKind.LOOK, f"look {look}", {"candidate_requests": look})
    remote = MlflowJournal(fresh_registry.registry().client)  # type: ignore[attr-defined]
    result = sync_to_remote(Journal(LocalJournal(tmp_path / "home"), remote), GOOD)
    assert (result.sent, result.created_run) == (4, True)
    elsewhere = Journal(
        LocalJournal(tmp_path / "elsewhere"), MlflowJournal(fresh_registry.registry().client)
    )  # type: ignore[attr-defined]
    record = elsewhere.load(GOOD)
    assert record.state == judged
    assert [e.event for e in record.events] == ["started", "look", "look", "look"]
