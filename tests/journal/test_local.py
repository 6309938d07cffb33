"""The local journal: JSON lines under GRAY_HOME, the full state kept beside them, damaged
records skipped with their file and line, and concurrent writers that never collide.

Damage is written by hand into a real GRAY_HOME: a line cut short by a kill -9, a
commands file with a bad line, a state file a foreign writer broke. Concurrent writers
run as separate processes, as concurrent `gray rollback` commands do.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from gray.controller.journal import Event, EventKind, Journal, LocalJournal
from gray.controller.journal.latest import KEPT_APART, keep_full_state
from gray.controller.state import Phase, RolloutState
from tests.fakes import rollout_state
from tests.journal.files import damage, events_file

GOOD = "fraud-20260101-000000-good"
BAD = "fraud-20260101-000001-bad0"
JUDGE = {"gates": [{"gate": "error_rate", "working_set": list(range(50))}]}
VERDICT = {"outcome": "inconclusive", "verdicts": [{"gate": "error_rate", "estimate": 1.0}]}
HISTORY = ({"stage": 0, "name": "10%", "outcome": "passed", "at": 1.0, "reason": "passed"},)
OLD_JOURNALS = Path(__file__).parent / "data" / "written-before-state-json"
OLD_ROLLOUT = "fraud-20231114-221320-0ld1"


def write_rollout(home: Path, rollout_id: str) -> Journal:
    """A rollout that started and is running its first stage."""
    journal = Journal(LocalJournal(home))
    state = rollout_state(rollout_id)
    journal.create(state, "name: plan\n")
    journal.append(state, EventKind.STARTED, "started", {})
    journal.append(state.with_(phase=Phase.RUNNING), EventKind.STAGE_STARTED, "stage 1", {})
    return journal


def judged(rollout_id: str, looks: int) -> RolloutState:
    """A running state whose gates have a working set, a verdict and a passed stage."""
    return rollout_state(
        rollout_id,
        started_at=1.0,
        updated_at=float(looks),
        phase=Phase.RUNNING,
        judge={**JUDGE, "looks": looks},
        last_verdict=VERDICT,
        history=HISTORY,
    )


def lines(home: Path, rollout_id: str) -> list[dict[str, object]]:
    path = events_file(home, rollout_id)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the full state beside the events --------------------------------------------


def test_an_event_line_holds_numbers_and_the_load_gives_back_the_full_state(
    tmp_path: Path,
) -> None:
    journal = write_rollout(tmp_path, GOOD)
    for look in range(3):
        written = journal.append(judged(GOOD, look), EventKind.LOOK, "inconclusive", {})
        # The caller (the runner's display, the MLflow queue) gets the whole state.
        assert written.state["judge"] == {**JUDGE, "looks": look}
    for line in lines(tmp_path, GOOD):
        assert not set(KEPT_APART) & set(line["state"])  # type: ignore[arg-type]
    record = LocalJournal(tmp_path).load(GOOD)
    assert record is not None
    assert record.state == judged(GOOD, 2)
    assert record.events[-1].state == judged(GOOD, 2).to_dict()
    assert record.events[-3].state.get("judge") is None  # older looks keep their numbers only


def test_a_crash_between_the_state_file_and_the_line_keeps_the_last_full_state(
    tmp_path: Path,
) -> None:
    journal = write_rollout(tmp_path, GOOD)
    journal.append(judged(GOOD, 1), EventKind.LOOK, "look 1", {})
    # The next look's full state is kept, then the process dies before its line is written.
    ghost = Event(99, 2e9, EventKind.LOOK, "never written", {}, judged(GOOD, 2).to_dict())
    keep_full_state(tmp_path / "rollouts" / GOOD, ghost, terminal=False)
    record = LocalJournal(tmp_path).load(GOOD)
    assert record is not None and record.state == judged(GOOD, 1)
    # The next writer goes on from the journal as the line left it.
    after = journal.append(judged(GOOD, 3), EventKind.LOOK, "look 3", {})
    assert after.seq == 4
    reloaded = LocalJournal(tmp_path).load(GOOD)
    assert reloaded is not None and reloaded.state == judged(GOOD, 3)


def test_the_first_end_keeps_its_full_state_after_a_stale_controllers_looks(
    tmp_path: Path,
) -> None:
    journal = write_rollout(tmp_path, GOOD)
    ended = judged(GOOD, 1).with_(phase=Phase.ROLLED_BACK, reason="rolled back by the pager")
    journal.append_terminal(ended, EventKind.ROLLED_BACK, ended.reason, {})
    for look in range(3):  # a stale controller that has not noticed yet
        journal.append(judged(GOOD, 10 + look), EventKind.LOOK, "stale look", {})
    record = LocalJournal(tmp_path).load(GOOD)
    assert record is not None and record.state == ended
    again = ended.with_(reason="a second rollback")
    first, wrote = journal.append_terminal(again, EventKind.ROLLED_BACK, again.reason, {})
    assert not wrote and RolloutState.from_dict(first.state) == ended


def test_a_damaged_state_file_is_named_and_the_events_still_load(tmp_path: Path) -> None:
    journal = write_rollout(tmp_path, GOOD)
    journal.append(judged(GOOD, 1), EventKind.LOOK, "look", {})
    state_file = tmp_path / "rollouts" / GOOD / "state.json"
    state_file.write_text('{"seq": 3, "state": {"phase": "warp"', encoding="utf-8")
    warnings: list[str] = []
    record = LocalJournal(tmp_path, on_warning=warnings.append).load(GOOD)
    assert record is not None and record.state.phase is Phase.RUNNING
    assert record.state.judge is None  # what the line holds
    assert any(str(state_file) in w and "damaged" in w for w in warnings), warnings


def test_a_journal_written_with_the_state_in_every_event_loads_whole(tmp_path: Path) -> None:
    # Written by gray before the state files existed: every line carries the judge.
    shutil.copytree(OLD_JOURNALS, tmp_path, dirs_exist_ok=True)
    record = LocalJournal(tmp_path).load(OLD_ROLLOUT)
    assert record is not None
    assert [e.event for e in record.events] == ["started", "stage_started", "look", "look"]
    assert record.state.phase is Phase.RUNNING
    assert record.state.judge is not None and record.state.last_verdict is not None
    assert record.state.judge == record.events[-1].state["judge"]
    # Appending in the new layout keeps the old lines readable beside the new ones.
    journal = Journal(LocalJournal(tmp_path))
    journal.append(record.state, EventKind.LOOK, "a look by the new code", {})
    again = LocalJournal(tmp_path).load(OLD_ROLLOUT)
    assert again is not None and again.state.judge == record.state.judge
    assert [e.seq for e in again.events] == [1, 2, 3, 4, 5]


# --- damaged records -----------------------------------------------------------


def test_a_torn_last_line_does_not_swallow_the_next_event(tmp_path: Path) -> None:
    write_rollout(tmp_path, GOOD)
    torn = damage(tmp_path, GOOD, b'{"seq": 3, "at": 17000')  # kill -9 mid-write: no newline
    state = rollout_state(GOOD, phase=Phase.RUNNING)
    written = Journal(LocalJournal(tmp_path)).append(state, EventKind.LOOK, "after the crash", {})
    assert written.seq == 3
    warnings: list[str] = []
    record = LocalJournal(tmp_path, on_warning=warnings.append).load(GOOD)
    assert record is not None
    assert [e.event for e in record.events] == ["started", "stage_started", "look"]
    assert [e.seq for e in record.events] == [1, 2, 3]
    assert len(warnings) == 1 and f"events.jsonl:{torn}" in warnings[0]


def test_an_event_gray_does_not_know_is_skipped_and_named(tmp_path: Path) -> None:
    write_rollout(tmp_path, GOOD)
    record = {
        "seq": 3,
        "at": 1.0,
        "event": "teleported",
        "reason": "",
        "data": {},
        "state": rollout_state(GOOD).to_dict(),
    }
    line = damage(tmp_path, GOOD, json.dumps(record).encode() + b"\n")
    warnings: list[str] = []
    loaded = LocalJournal(tmp_path, on_warning=warnings.append).load(GOOD)
    assert loaded is not None and [e.seq for e in loaded.events] == [1, 2]
    assert len(warnings) == 1
    assert f"events.jsonl:{line}" in warnings[0] and "unknown event 'teleported'" in warnings[0]


def test_a_journal_with_only_bad_records_is_skipped_and_active_rollouts_are_still_found(
    tmp_path: Path,
) -> None:
    write_rollout(tmp_path, GOOD)
    bad = events_file(tmp_path, BAD)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"seq": 1}\n[1, 2]\n"text"\n')
    warnings: list[str] = []
    journal = Journal(LocalJournal(tmp_path, on_warning=warnings.append))
    assert [s.rollout_id for s in journal.active_for("fraud")] == [GOOD]
    assert [w.split(": ")[0] for w in warnings] == [f"{bad}:{n}" for n in (1, 2, 3)]


def test_commands_file_with_bad_lines_still_yields_the_good_commands(tmp_path: Path) -> None:
    journal = write_rollout(tmp_path, GOOD)
    journal.post_command(GOOD, "approve", "looks right")
    commands = tmp_path / "rollouts" / GOOD / "commands.jsonl"
    with commands.open("ab") as file:
        file.write(b'{"command": "pause"}\n')
    journal.post_command(GOOD, "pause", "spike")
    warnings: list[str] = []
    found = Journal(LocalJournal(tmp_path, on_warning=warnings.append)).commands(GOOD)
    assert [c.command for c in found] == ["approve", "pause"]
    assert len(warnings) == 1 and f"{commands}:2" in warnings[0]


# --- concurrent writers --------------------------------------------------------

WRITERS = 8
APPENDS_EACH = 25


def _append_many(home: str, rollout_id: str, count: int) -> None:
    journal = Journal(LocalJournal(Path(home)))
    for number in range(count):
        journal.append(judged(rollout_id, number), EventKind.LOOK, f"look {number}", {})


def _append_terminal(home: str, rollout_id: str, writer: int) -> None:
    journal = Journal(LocalJournal(Path(home)))
    state = rollout_state(rollout_id, phase=Phase.ROLLED_BACK, reason=f"rolled back by {writer}")
    journal.append_terminal(state, EventKind.ROLLED_BACK, state.reason, {"writer": writer})


def _run_processes(target: object, args: list[tuple[object, ...]]) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=target, args=a) for a in args]  # type: ignore[arg-type]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0


def test_concurrent_writers_get_unique_sequence_numbers(tmp_path: Path) -> None:
    write_rollout(tmp_path, GOOD)
    _run_processes(_append_many, [(str(tmp_path), GOOD, APPENDS_EACH)] * WRITERS)
    record = LocalJournal(tmp_path).load(GOOD)
    assert record is not None
    seqs = [e.seq for e in record.events]
    assert sorted(seqs) == list(range(1, 2 + WRITERS * APPENDS_EACH + 1))
    # The state file names the newest line, whichever writer wrote it last.
    assert record.state.judge is not None


def test_twenty_concurrent_terminal_appends_write_one_terminal_event(tmp_path: Path) -> None:
    write_rollout(tmp_path, GOOD)
    _run_processes(_append_terminal, [(str(tmp_path), GOOD, n) for n in range(20)])
    record = LocalJournal(tmp_path).load(GOOD)
    assert record is not None
    terminal = [e for e in record.events if RolloutState.from_dict(e.state).phase.terminal]
    assert len(terminal) == 1
    assert record.state.phase is Phase.ROLLED_BACK
    assert len({e.seq for e in record.events}) == len(record.events)


def test_append_terminal_returns_the_terminal_event_already_written(tmp_path: Path) -> None:
    journal = write_rollout(tmp_path, GOOD)
    aborted = rollout_state(GOOD, phase=Phase.ABORTED, reason="aborted by a")
    first, wrote_first = journal.append_terminal(aborted, EventKind.ABORTED, aborted.reason, {})
    again = rollout_state(GOOD, phase=Phase.ROLLED_BACK, reason="rolled back by b")
    second, wrote_second = journal.append_terminal(again, EventKind.ROLLED_BACK, again.reason, {})
    assert (wrote_first, wrote_second) == (True, False)
    assert second == first and second.event is EventKind.ABORTED
    with pytest.raises(ValueError, match="terminal"):
        journal.append_terminal(rollout_state(GOOD, phase=Phase.RUNNING), EventKind.LOOK, "", {})
