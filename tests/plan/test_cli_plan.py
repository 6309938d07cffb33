"""`gray plan` through the real Typer app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app

from .test_broken_plans import VALID

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "plans").glob("*.yaml"))
runner = CliRunner()


def test_example_plans_are_valid() -> None:
    assert len(EXAMPLES) >= 3
    result = runner.invoke(app, ["plan", "validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    for path in EXAMPLES:
        assert path.name in result.output


def test_validate_reports_broken_plan_with_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(VALID.replace("dwell: 5m}\n  - {weight: 50%", "dwel: 5m}\n  - {weight: 50%"))
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    result = runner.invoke(app, ["plan", "validate", str(good), str(broken)])
    assert result.exit_code == 2
    assert "broken.yaml:10:" in result.output
    assert "did you mean 'dwell'?" in result.output


def test_validate_json(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(VALID.replace("weight: 50%", "weight: 2%"))
    result = runner.invoke(app, ["plan", "validate", "--output", "json", str(broken)])
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    problem = payload["plans"][0]["problems"][0]
    assert problem["line"] == 11 and problem["field"] == "stages[1].weight"


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "No such file" in result.output


def test_show_renders_every_example() -> None:
    # With --rps every example is simulated in tests/plan/test_detectability.py.
    for path in EXAMPLES:
        result = runner.invoke(app, ["plan", "show", str(path)])
        assert result.exit_code == 0, result.output
        assert "Total:" in result.output


@pytest.mark.slow
def test_show_renders_what_each_stage_detects() -> None:
    # The numbers are checked for every example in tests/plan/test_detectability.py.
    path = REPO / "plans" / "cold-start.yaml"
    result = runner.invoke(app, ["plan", "show", str(path), "--rps", "200"])
    assert result.exit_code == 0, result.output
    assert "what each stage detects at 200 requests/s" in result.output
    assert "or more" in result.output and "median" in result.output
    assert "Rate gates simulated with the clustered test" in result.output
    assert "warning: stage 1/6 (internal-shadow) cannot reach its own margin" in result.output


def test_show_json_counts_candidate_requests(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(VALID)
    result = runner.invoke(app, ["plan", "show", str(plan), "--rps", "100", "-o", "json"])
    payload = json.loads(result.stdout)
    assert payload["total_seconds"] == 600
    assert [s["candidate_requests"] for s in payload["stages"]] == [1500, 15000]


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).output.startswith("gray ")
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "Examples" in result.output


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from gray.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'scipy', 'uvicorn', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
