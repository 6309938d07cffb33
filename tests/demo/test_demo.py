"""`gray demo` end to end with the shortest timings: the outcomes, not just the exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gray.controller.journal import LocalJournal
from gray.controller.journal.mlflow_run import REPORT_ARTIFACT, MlflowJournal
from gray.controller.registry import Registry

pytestmark = pytest.mark.slow


def test_demo_rolls_back_the_bad_candidate_and_promotes_the_good_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    workdir = tmp_path / "demo"
    env = {**os.environ, "GRAY_HOME": str(home), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "gray.cli", "demo", "--quick", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "everything it started is stopped" in result.stdout

    states = {s.plan_name: s for s in LocalJournal(home).list_states("fraud")}
    bad, good = states["demo-bad"], states["demo-good"]
    assert bad.phase.value == "rolled_back"
    assert "error rate" in bad.reason and "FAIL" in bad.reason
    record = LocalJournal(home).load(bad.rollout_id)
    assert record is not None
    kinds = [e.event for e in record.events]
    assert "gate_failed" in kinds and kinds.index("gate_failed") < kinds.index("rolled_back")

    assert good.phase.value == "promoted"
    registry = Registry(f"sqlite:///{workdir / 'mlflow.db'}")
    assert registry.resolve("fraud", "@champion").version == good.candidate
    assert registry.resolve("fraud", "@previous-champion").version == good.baseline
    moves = [m.to_dict() for m in registry.history("fraud")]
    assert any(m["alias"] == "champion" and m["to_version"] == good.candidate for m in moves)
    # Each finished rollout's report is in its MLflow run, beside its journal.
    shared = MlflowJournal(registry.client)
    for state, words in ((bad, "the gates: error_rate"), (good, "every stage passed")):
        run_id = shared._run_id(state.rollout_id)
        assert REPORT_ARTIFACT in {f.path for f in shared.client.list_artifacts(run_id)}
        page = shared.client.download_artifacts(run_id, REPORT_ARTIFACT, str(tmp_path))
        assert words in Path(page).read_text(encoding="utf-8")
    # The working folder is left for inspection, with the plans it ran.
    assert (workdir / "plan-bad.yaml").exists() and (workdir / "plan-good.yaml").exists()
    assert json.dumps(moves)
