"""`gray rollout report` on a real journal, and the report.html a finished rollout logs to
its MLflow run (a real sqlite store), with and without the `report` extra."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.journal import Journal, LocalJournal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.journal.mlflow_run import REPORT_ARTIFACT, MlflowJournal
from gray.controller.report.artifact import finished_report
from tests.conftest import DemoRegistry
from tests.loop.conftest import Harness
from tests.test_extras import hide

from .conftest import ROLLOUT, RolloutJournal


def report(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["rollout", "report", ROLLOUT, *args], env={"GRAY_HOME": str(home)}
    )
    return result.exit_code, result.output


def test_the_command_writes_the_page_and_says_where(
    rollout_journal: RolloutJournal, tmp_path: Path
) -> None:
    target = tmp_path / "out.html"
    code, output = report(rollout_journal.home, "--html", str(target), "--output", "json")
    assert code == 0, output
    answer = json.loads(output.strip().splitlines()[-1])
    assert answer["path"] == str(target) and answer["phase"] == "rolled_back"
    assert answer["bytes"] == target.stat().st_size > 4_000_000  # plotly.js is inside
    # The plan mirrors traffic: the gateway it names was asked for disagreeing pairs.
    assert "prediction log not reachable" in answer["pairs"]
    page = target.read_text()
    assert ROLLOUT in page and "the gates: error_rate failed" in page


def test_disagreeing_pairs_come_from_a_prediction_log_on_disk(
    rollout_journal: RolloutJournal, tmp_path: Path
) -> None:
    log = tmp_path / "gateway" / "predictions" / "predictions.jsonl"
    log.parent.mkdir(parents=True)
    pairs = [
        {
            "kind": "shadow",
            "request_id": f"req-{n}",
            "time": 1_700_000_000.0 + n,
            "agree": n % 2 == 0,
            "baseline": {"version": "1", "output": [0]},
            "candidate": {"version": "2", "output": [n % 2]},
        }
        for n in range(6)
    ]
    log.write_text("".join(json.dumps(p) + "\n" for p in pairs) + '{"cut short')
    target = tmp_path / "out.html"
    code, output = report(
        rollout_journal.home,
        "--html",
        str(target),
        "--output",
        "json",
        "--prediction-log",
        str(tmp_path / "gateway"),
    )
    assert code == 0, output
    note = json.loads(output.strip().splitlines()[-1])["pairs"]
    assert note.startswith("the newest 3 of 3 disagreeing pairs among the 6 mirrored pairs in")
    page = target.read_text()
    assert all(f"req-{n}<" in page for n in (1, 3, 5))
    assert not any(f"req-{n}<" in page for n in (0, 2, 4))
    code, output = report(rollout_journal.home, "--prediction-log", str(tmp_path / "none"))
    assert code == 2 and "no prediction log under" in output


def test_a_page_that_cannot_be_written_and_a_missing_extra_exit_2(
    rollout_journal: RolloutJournal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = report(rollout_journal.home, "--html", str(tmp_path / "no" / "such.html"))
    assert code == 2 and "cannot write the report to" in output
    hide(monkeypatch, "plotly")
    code, output = report(rollout_journal.home)
    assert code == 2
    assert "pip install 'gray-rollout[report]'" in output


def artifacts(remote: MlflowJournal, rollout_id: str) -> set[str]:
    return {f.path for f in remote.client.list_artifacts(remote._run_id(rollout_id))}


SHORT_PLAN = """\
name: short
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
interval: 1s
gates:
  - {metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%}
stages:
  - {weight: 50%, dwell: 3s}
policies:
  inconclusive: {then: pass, max_extensions: 0}
promote: {alias: champion, keep_previous_as: previous-champion}
"""


def test_a_finished_rollout_logs_its_report_to_mlflow(
    fresh_registry: DemoRegistry, tmp_path: Path
) -> None:
    remote = MlflowJournal(fresh_registry.registry().client)
    harness = Harness(tmp_path, SHORT_PLAN)
    harness.journal = Journal(LocalJournal(tmp_path / "home"), BackgroundRemote(remote))
    result = harness.runner().run(harness.start())
    assert result.exit_code == 0, result.reason
    run_id = remote._run_id(ROLLOUT)
    assert REPORT_ARTIFACT in {f.path for f in remote.client.list_artifacts(run_id)}
    page = Path(remote.client.download_artifacts(run_id, REPORT_ARTIFACT, str(tmp_path)))
    assert ROLLOUT in page.read_text() and "promoted" in page.read_text()


def test_without_the_extra_a_finished_rollout_says_how_to_get_its_report(
    rollout_journal: RolloutJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide(monkeypatch, "plotly")
    journal = Journal(LocalJournal(rollout_journal.home))
    notes: list[str] = []
    assert finished_report(journal, rollout_journal.plan, ROLLOUT, notes.append) is None
    assert len(notes) == 1
    assert "pip install 'gray-rollout[report]'" in notes[0]
    assert f"gray rollout report {ROLLOUT}" in notes[0]


def test_plotly_is_imported_only_where_the_page_is_drawn() -> None:
    # Commands that do not draw (and the controller's own loop) must not pay for it.
    root = Path(__file__).resolve().parents[2]
    importers = []
    for path in sorted([*(root / "controller").rglob("*.py"), *(root / "cli").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        if "plotly" not in text:
            continue
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "plotly" for name in names):
                top_level = node in tree.body
                importers.append((str(path.relative_to(root)), top_level))
    assert importers == [("controller/report/page.py", False)]
