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


def test_a_refused_start_waits_a_doubling_backoff(
    fresh_registry: DemoRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gray.controller.errors import PreflightError
    from gray.controller.journal import Journal, LocalJournal
    from gray.controller.plan.loading import load_plan
    from gray.controller.watch.decision import Action, Decision
    from gray.controller.watch.watcher import Started, Watcher

    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    tried: list[str | None] = []

    def refused_by_preflight(decision: Decision) -> Started:
        tried.append(decision.version)
        raise PreflightError("preflight refused the rollout, nothing was changed", [])

    events: list[dict[str, object]] = []
    now = [1000.0]
    plan = load_plan(plan_file(tmp_path, fresh_registry.uri))
    watcher = Watcher(
        plan,
        fresh_registry.registry(),
        Journal(LocalJournal()),
        refused_by_preflight,
        events.append,
        60.0,
        clock=lambda: now[0],
    )
    good = fresh_registry.versions["good"]
    assert watcher.check("poll").action is Action.START
    again = watcher.check("poll")
    assert again.action is Action.WAIT and "refused by its preflight" in again.reason
    assert tried == [good]
    refusal = next(e for e in events if e["event"] == "start_refused")
    assert refusal["retry_in_seconds"] == 60.0 and refusal["version"] == good
    now[0] += 61  # the backoff ran out: tried again, then twice as long
    assert watcher.check("poll").action is Action.START and tried == [good, good]
    assert [e["retry_in_seconds"] for e in events if e["event"] == "start_refused"] == [60.0, 120.0]
