"""A damaged journal never breaks the on-call commands.

Each mode of damage is written by hand into a real GRAY_HOME: a record missing
its fields, a record with a phase gray does not know, bytes that are not UTF-8.
`gray rollout list`, `status` and `rollback` skip the bad records with a warning
naming the file and line. (The journal's own handling of damage, torn lines and
concurrent writers is tested in tests/journal.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.journal import Journal, LocalJournal
from gray.controller.state import Phase, RolloutState
from tests.fakes import rollout_state
from tests.journal.files import damage, events_file
from tests.loop.conftest import PLAN

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
