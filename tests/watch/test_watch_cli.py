"""`gray watch` refuses bad input before it looks (exit 2, with what to fix), and `--once`
looks once and says what it decided, as one JSON line for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from tests.conftest import DemoRegistry

PLAN = """\
name: watch-cli
model: {{name: fraud, baseline: "@champion", candidate: "{candidate}", preprocessor: {{artifact: preprocessor}}}}
registry: {{uri: "{uri}"}}
router: {{type: gateway, url: "http://127.0.0.1:9", token: "unused"}}
interval: 1s
gates: [{{metric: error_rate, max_increase: 50%}}]
stages: [{{weight: 30%, dwell: 8s}}]
"""


def plan_file(tmp_path: Path, uri: str, candidate: str = "@challenger") -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN.format(candidate=candidate, uri=uri))
    return str(path)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--listen", "127.0.0.1:8090"], "GRAY_WEBHOOK_SECRET"),
        (["--listen", "8090"], "HOST:PORT"),
        (["--once", "--listen", "127.0.0.1:8090"], "choose one"),
        (["--interval", "2h"], "between 100ms and 1h"),
        (["--interval", "soon"], "--interval"),
    ],
)
def test_bad_options_exit_2_saying_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    monkeypatch.delenv("GRAY_WEBHOOK_SECRET", raising=False)
    plan = plan_file(tmp_path, f"sqlite:///{tmp_path}/none.db")
    result = CliRunner().invoke(app, ["watch", plan, *args, "-o", "json"])
    assert result.exit_code == 2, result.output
    assert words in json.loads(result.output.strip().splitlines()[-1])["message"]


def test_a_fixed_candidate_has_nothing_to_watch(tmp_path: Path) -> None:
    plan = plan_file(tmp_path, f"sqlite:///{tmp_path}/none.db", candidate="7")
    result = CliRunner().invoke(app, ["watch", plan, "--once"])
    assert result.exit_code == 2 and "a fixed version" in result.output


def test_once_reports_its_decision_as_json(
    fresh_registry: DemoRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    baseline = fresh_registry.versions["baseline"]
    client = MlflowClient(tracking_uri=fresh_registry.uri, registry_uri=fresh_registry.uri)
    client.set_registered_model_alias("fraud", "challenger", baseline)
    result = CliRunner().invoke(
        app, ["watch", plan_file(tmp_path, fresh_registry.uri), "--once", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output.strip().splitlines()[-1])
    assert decision["event"] == "decision" and decision["trigger"] == "once"
    assert (decision["action"], decision["version"]) == ("idle", baseline)
