"""A damaged journal never breaks the on-call commands, and concurrent writers never collide.

Each mode of damage is written by hand into a real GRAY_HOME: a record missing
its fields, a record with a phase gray does not know, bytes that are not UTF-8,
and a line cut short by a kill -9 mid-write. The commands skip the bad records
with a warning naming the file and line, and the next append starts on a fresh
line. Concurrent writers (separate processes, as concurrent `gray rollback`
commands are) get unique sequence numbers and at most one terminal event.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.journal import Journal, LocalJournal
from gray.controller.state import Phase, RolloutState
from tests.loop.conftest import PLAN, rollout_state

runner = CliRunner()
NO_REGISTRY = ["--registry-uri", "sqlite:////nonexistent/gray-tests/mlflow.db"]
TOKEN = "journal-token"
GOOD = "fraud-20260101-000000-good"
BAD = "fraud-20260101-000001-bad0"


def write_rollout(home: Path, rollout_id: str, plan_text: str = PLAN) -> Journal:
    """A rollout that started and is running its first stage."""
    journal = Journal(LocalJournal(home))
    state = rollout_state(rollout_id)
    journal.create(state, plan_text)
    journal.append(state, "started", "started", {})
    journal.append(state.with_(phase=Phase.RUNNING), "stage_started", "stage 1", {})
    return journal


def events_file(home: Path, rollout_id: str) -> Path:
    return home / "rollouts" / rollout_id / "events.jsonl"


def damage(home: Path, rollout_id: str, raw: bytes) -> int:
    """Append raw bytes to a rollout's events; the 1-based line number they start on."""
    path = events_file(home, rollout_id)
    line = path.read_bytes().count(b"\n") + 1
    with path.open("ab") as file:
        file.write(raw)
    return line


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("GRAY_HOME", str(folder))
    return folder


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b'{"seq": 1}\n', "missing"),
        (
            json.dumps(
                {
                    "seq": 3,
                    "at": 1.0,
                    "event": "look",
                    "reason": "",
                    "data": {},
                    "state": {**rollout_state(BAD).to_dict(), "phase": "exploded"},
                }
            ).encode()
            + b"\n",
            "exploded",
        ),
        (b"\xff\xfe not utf-8 \x00\n", "UTF-8"),
    ],
    ids=["missing-fields", "unknown-phase", "not-utf8"],
)
def test_list_and_status_skip_a_bad_record_and_name_it(home: Path, raw: bytes, what: str) -> None:
    write_rollout(home, GOOD)
    write_rollout(home, BAD)
    line = damage(home, BAD, raw)
    listed = runner.invoke(app, ["rollout", "list", "-o", "json", *NO_REGISTRY])
    assert listed.exit_code == 0, listed.output
    ids = {r["rollout_id"] for r in json.loads(listed.stdout.strip().splitlines()[-1])["rollouts"]}
    assert ids == {GOOD, BAD}
    where = f"{events_file(home, BAD)}:{line}"
    assert where in listed.stderr and what in listed.stderr
    status = runner.invoke(app, ["rollout", "status", BAD, "-o", "json", *NO_REGISTRY])
    assert status.exit_code == 0, status.output
    payload = json.loads(status.stdout.strip().splitlines()[-1])
    assert payload["state"]["phase"] == "running"
    assert where in status.stderr


def test_a_journal_with_only_bad_records_is_skipped_and_active_rollouts_are_still_found(
    home: Path,
) -> None:
    write_rollout(home, GOOD)
    bad = events_file(home, BAD)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"seq": 1}\n[1, 2]\n"text"\n')
    warnings: list[str] = []
    journal = Journal(LocalJournal(home, on_warning=warnings.append))
    assert [s.rollout_id for s in journal.active_for("fraud")] == [GOOD]
    assert [w.split(": ")[0] for w in warnings] == [f"{bad}:{n}" for n in (1, 2, 3)]


def test_a_torn_last_line_does_not_swallow_the_next_event(home: Path) -> None:
    journal = write_rollout(home, GOOD)
    torn = damage(home, GOOD, b'{"seq": 3, "at": 17000')  # kill -9 mid-write: no newline
    state = rollout_state(GOOD, phase=Phase.RUNNING)
    written = Journal(LocalJournal(home)).append(state, "look", "after the crash", {})
    assert written.seq == 3
    warnings: list[str] = []
    record = LocalJournal(home, on_warning=warnings.append).load(GOOD)
    assert record is not None
    assert [e.event for e in record.events] == ["started", "stage_started", "look"]
    assert [e.seq for e in record.events] == [1, 2, 3]
    assert len(warnings) == 1 and f"events.jsonl:{torn}" in warnings[0]
    del journal


def test_commands_file_with_bad_lines_still_yields_the_good_commands(home: Path) -> None:
    journal = write_rollout(home, GOOD)
    journal.post_command(GOOD, "approve", "looks right")
    commands = home / "rollouts" / GOOD / "commands.jsonl"
    with commands.open("ab") as file:
        file.write(b'{"command": "pause"}\n')
    journal.post_command(GOOD, "pause", "spike")
    warnings: list[str] = []
    found = Journal(LocalJournal(home, on_warning=warnings.append)).commands(GOOD)
    assert [c.command for c in found] == ["approve", "pause"]
    assert len(warnings) == 1 and f"{commands}:2" in warnings[0]


# --- concurrent writers --------------------------------------------------------

WRITERS = 8
APPENDS_EACH = 25


def _append_many(home: str, rollout_id: str, count: int) -> None:
    journal = Journal(LocalJournal(Path(home)))
    state = rollout_state(rollout_id, phase=Phase.RUNNING)
    for number in range(count):
        journal.append(state, "look", f"look {number}", {})


def _append_terminal(home: str, rollout_id: str, writer: int) -> None:
    journal = Journal(LocalJournal(Path(home)))
    state = rollout_state(rollout_id, phase=Phase.ROLLED_BACK, reason=f"rolled back by {writer}")
    journal.append_terminal(state, "rolled_back", state.reason, {"writer": writer})


def _run_processes(target: object, args: list[tuple[object, ...]]) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=target, args=a) for a in args]  # type: ignore[arg-type]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0


def test_concurrent_writers_get_unique_sequence_numbers(home: Path) -> None:
    write_rollout(home, GOOD)
    _run_processes(_append_many, [(str(home), GOOD, APPENDS_EACH)] * WRITERS)
    record = LocalJournal(home).load(GOOD)
    assert record is not None
    seqs = [e.seq for e in record.events]
    assert sorted(seqs) == list(range(1, 2 + WRITERS * APPENDS_EACH + 1))


def test_twenty_concurrent_terminal_appends_write_one_terminal_event(home: Path) -> None:
    write_rollout(home, GOOD)
    _run_processes(_append_terminal, [(str(home), GOOD, n) for n in range(20)])
    record = LocalJournal(home).load(GOOD)
    assert record is not None
    terminal = [e for e in record.events if RolloutState.from_dict(e.state).phase.terminal]
    assert len(terminal) == 1
    assert record.state.phase is Phase.ROLLED_BACK
    assert len({e.seq for e in record.events}) == len(record.events)


def test_append_terminal_returns_the_terminal_event_already_written(home: Path) -> None:
    journal = write_rollout(home, GOOD)
    aborted = rollout_state(GOOD, phase=Phase.ABORTED, reason="aborted by a")
    first, wrote_first = journal.append_terminal(aborted, "aborted", aborted.reason, {})
    again = rollout_state(GOOD, phase=Phase.ROLLED_BACK, reason="rolled back by b")
    second, wrote_second = journal.append_terminal(again, "rolled_back", again.reason, {})
    assert (wrote_first, wrote_second) == (True, False)
    assert second == first and second.event == "aborted"
    with pytest.raises(ValueError, match="terminal"):
        journal.append_terminal(rollout_state(GOOD, phase=Phase.RUNNING), "look", "", {})


# --- the on-call button with a real gateway ------------------------------------


@pytest.fixture(scope="module")
def gateway(demo_registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from gray.gateway.testing import start_gateway

    running = start_gateway(
        demo_registry.uri, "fraud", tmp_path_factory.mktemp("journal-gw"), token=TOKEN
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_rollback_is_not_blocked_by_another_rollouts_damaged_journal(
    home: Path, gateway, fresh_registry, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GRAY_GATEWAY_TOKEN", TOKEN)
    plan = PLAN.replace(
        "interval: 1s",
        f'router: {{url: "{gateway.url}", token: "${{GRAY_GATEWAY_TOKEN}}"}}\ninterval: 1s',
    )
    write_rollout(home, GOOD, plan)
    write_rollout(home, BAD, plan)
    damage(home, BAD, b'{"seq": 1}\n')
    damage(home, BAD, b"\xff\xfe\n")
    registry = ["--registry-uri", fresh_registry.uri]
    result = runner.invoke(app, ["rollback", "fraud", "--reason", "pager", *registry])
    assert result.exit_code == 0, result.output
    assert "answers 100 %" in result.stdout
    assert f"{events_file(home, BAD)}:" in result.stderr
    route = httpx.get(f"{gateway.url}/admin/route", headers=gateway.headers).json()
    assert route["route"]["weight"] == 0
    # A second rollback of the same rollout adds no second terminal event.
    again = runner.invoke(app, ["rollback", GOOD, *registry])
    assert again.exit_code == 0, again.output
    record = LocalJournal(home).load(GOOD)
    assert record is not None
    assert sum(RolloutState.from_dict(e.state).phase.terminal for e in record.events) == 1


def test_a_damaged_record_in_the_mlflow_journal_is_skipped_with_a_warning(
    fresh_registry: object, tmp_path: Path
) -> None:
    # A record in the shared journal damaged by a foreign or crashed writer must not hide
    # the rollout (or every rollout) from another machine's `rollback`, `status` or `list`.
    from gray.controller.journal.mlflow_run import MlflowJournal

    warnings: list[str] = []
    remote = MlflowJournal(fresh_registry.registry().client, warnings.append)  # type: ignore[attr-defined]
    journal = Journal(LocalJournal(tmp_path / "home"), remote)
    state = rollout_state(GOOD)
    journal.create(state, PLAN)
    journal.append(state, "started", "started", {})
    journal.append(state.with_(phase=Phase.RUNNING), "stage_started", "stage 1", {})
    other = rollout_state(BAD)
    journal.create(other, PLAN)
    journal.append(other, "started", "started", {})
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


def test_a_missing_registry_after_the_write_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    # Traffic is already back on the baseline when the registry is asked to tag the
    # candidate: a registry that cannot be opened must not turn that into exit 2.
    from gray.controller.operator import record_rollback
    from gray.controller.registry import Registry
    from gray.controller.types import Applied, Lease, RouteSpec

    journal = write_rollout(tmp_path / "home", GOOD)
    state = journal.load(GOOD).state
    applied = Applied(RouteSpec(baseline="1", candidate="2"), Lease(GOOD, 2))
    recorded = record_rollback(
        applied,
        router=None,
        journal=journal,
        registry=Registry("sqlite:////nonexistent/gray-tests/mlflow.db"),
        state=state,
        plan=None,
        reason="pager",
        to_previous=False,
    )
    assert recorded.event is not None and recorded.event.state["phase"] == "rolled_back"
    assert any("registry tag not written" in w for w in recorded.warnings), recorded.warnings
