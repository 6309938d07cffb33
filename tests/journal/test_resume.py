"""A rollout resumes and reads whole from either journal layout: the full state in every
event line (gray before `state.json`) or numbers in the lines and the state beside them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller import rollouts
from gray.controller.journal import Journal, LocalJournal
from gray.controller.runner import Runner
from gray.controller.state import Phase
from tests.fakes import FakeClock, FakeMetrics, FakeRegistry, FakeRouter
from tests.loop.conftest import Harness

OLD_JOURNALS = Path(__file__).parent / "data" / "written-before-state-json"
OLD_ROLLOUT = "fraud-20231114-221320-0ld1"
NO_REGISTRY = ["--registry-uri", "sqlite:////nonexistent/gray-tests/mlflow.db"]


class Deadline(FakeClock):
    """A fake clock that refuses to run past `limit`: a resumed stage that cannot judge
    would otherwise wait for its verdict forever."""

    def __init__(self, start: float, limit: float) -> None:
        super().__init__(start)
        self.limit = limit

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.t > self.limit:
            raise AssertionError("the resumed rollout never reached a verdict")


@pytest.fixture
def old_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(OLD_JOURNALS, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("GRAY_HOME", str(tmp_path))
    return tmp_path


def test_a_rollout_journaled_with_the_state_in_every_line_resumes_and_judges_on(
    old_home: Path,
) -> None:
    journal = Journal(LocalJournal(old_home))
    before = journal.load(OLD_ROLLOUT).state
    assert before.phase is Phase.RUNNING and before.judge is not None
    plan, step = rollouts.prepare_resume(journal, OLD_ROLLOUT, None, now=before.updated_at)
    assert step.state.judge == before.judge  # the gates carry on from the journal
    clock = Deadline(before.updated_at + 1, limit=before.updated_at + 120)
    router = FakeRouter(baseline="1")
    metrics = FakeMetrics(clock, router, rps=10000)
    seen: list[str] = []
    result = Runner(
        plan,
        router,
        metrics,
        FakeRegistry(),
        journal,
        clock=clock,
        on_event=lambda e: seen.append(e.event),
        exit_on_hold=True,
    ).run(step)
    assert result.state.phase is Phase.WAITING_APPROVAL, result.reason
    assert seen[:2] == ["resumed", "route_verified"] and "look" in seen
    record = LocalJournal(old_home).load(OLD_ROLLOUT)
    assert record is not None and record.state == result.state
    assert [e.seq for e in record.events] == list(range(1, len(record.events) + 1))


def test_status_reads_the_whole_state_of_either_layout(old_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    old = runner.invoke(app, ["rollout", "status", OLD_ROLLOUT, "-o", "json", *NO_REGISTRY])
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout.strip().splitlines()[-1])["state"]["judge"] is not None

    harness = Harness(tmp_path / "new")
    harness.journal = Journal(LocalJournal(old_home))
    result = harness.runner().run(harness.start(until_stage=0))
    assert result.state.phase is Phase.HELD
    new = runner.invoke(app, ["rollout", "status", "fraud-test-0001", "-o", "json", *NO_REGISTRY])
    assert new.exit_code == 3, new.output
    state = json.loads(new.stdout.strip().splitlines()[-1])["state"]
    assert state == result.state.to_dict()
    assert state["judge"] is not None and state["history"]
