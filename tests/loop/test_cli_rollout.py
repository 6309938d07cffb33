"""`gray rollout` commands through the real Typer app, over a journal the fake loop wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.state import Phase

from .conftest import Harness

runner = CliRunner()
NO_REGISTRY = ["--registry-uri", "sqlite:////nonexistent/gray-tests/mlflow.db"]


@pytest.fixture
def held(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A rollout held after its first stage, as `--until-stage 1` leaves it."""
    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    result = harness.runner().run(harness.start(until_stage=0))
    assert result.state.phase is Phase.HELD
    return harness


def test_status_json_shows_state_and_recent_events(held: Harness) -> None:
    result = runner.invoke(
        app, ["rollout", "status", "fraud-test-0001", "-o", "json", *NO_REGISTRY]
    )
    assert result.exit_code == 3, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["state"]["phase"] == "held"
    assert payload["events"][-1]["event"] == "held"


def test_status_text_renders_the_panel(held: Harness) -> None:
    result = runner.invoke(app, ["rollout", "status", "fraud-test-0001", *NO_REGISTRY])
    assert result.exit_code == 3
    assert "fraud-test-0001" in result.output and "held" in result.output
    assert "error_rate" in result.output and "PASS" in result.output  # the gate table


def test_list_and_status_without_id(held: Harness) -> None:
    listed = runner.invoke(app, ["rollout", "list", "-o", "json", *NO_REGISTRY])
    assert listed.exit_code == 0, listed.output
    ids = [r["rollout_id"] for r in json.loads(listed.stdout.strip().splitlines()[-1])["rollouts"]]
    assert ids == ["fraud-test-0001"]
    active = runner.invoke(app, ["rollout", "status", *NO_REGISTRY])
    assert "fraud-test-0001" in active.output


def test_commands_are_journaled_for_the_controller(held: Harness) -> None:
    result = runner.invoke(
        app, ["rollout", "approve", "fraud-test-0001", "--reason", "ok", *NO_REGISTRY]
    )
    assert result.exit_code == 0, result.output
    assert "no controller is running" in result.output
    commands = held.journal.commands("fraud-test-0001")
    assert [c.command for c in commands] == ["approve"]
    assert commands[0].reason == "ok"


def test_promote_needs_skip_remaining(held: Harness) -> None:
    result = runner.invoke(app, ["rollout", "promote", "fraud-test-0001", *NO_REGISTRY])
    assert result.exit_code == 2
    assert "--skip-remaining" in result.output


def test_unknown_rollout_exits_2(held: Harness) -> None:
    result = runner.invoke(app, ["rollout", "status", "nope-1", *NO_REGISTRY])
    assert result.exit_code == 2
    assert "no rollout 'nope-1'" in result.output


def test_commands_on_an_ended_rollout_are_refused(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    from tests.fakes import VersionBehaviour

    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.2)
    harness.runner().run(harness.start())
    result = runner.invoke(app, ["rollout", "pause", "fraud-test-0001", *NO_REGISTRY])
    assert result.exit_code == 2
    assert "already ended: rolled_back" in result.output


@pytest.fixture
def rolled_back(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A rollout the gates rolled back in its first stage; its plan names the gateway token."""
    from tests.fakes import VersionBehaviour

    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRAY_GATEWAY_TOKEN", raising=False)
    harness.plan_text = harness.plan_text.replace(
        "interval: 1s",
        'interval: 1s\nrouter: {url: "http://127.0.0.1:9", token: "${GRAY_GATEWAY_TOKEN}"}',
    )
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=0.2)
    assert harness.runner().run(harness.start()).exit_code == 1
    return harness


def test_status_of_a_rolled_back_rollout_needs_no_token_and_shows_no_candidate_share(
    rolled_back: Harness,
) -> None:
    result = runner.invoke(app, ["rollout", "status", "fraud-test-0001", *NO_REGISTRY])
    assert result.exit_code == 1, result.output
    assert "candidate 0 % (was 10%)" in result.output and "v1 answers all" in result.output
    assert "candidate 10%" not in result.output


def test_status_without_id_shows_the_latest_when_none_is_active(rolled_back: Harness) -> None:
    result = runner.invoke(app, ["rollout", "status", *NO_REGISTRY])
    assert result.exit_code == 0, result.output
    assert "no active rollout; the latest 1:" in result.output
    # Piped output keeps table rows whole instead of folding them into slivers.
    assert any(
        "fraud-test-0001" in line and "rolled_back" in line for line in result.output.splitlines()
    )
    listed = runner.invoke(app, ["rollout", "status", "-o", "json", *NO_REGISTRY])
    payload = json.loads(listed.stdout.strip().splitlines()[-1])
    assert payload["rollouts"] == [] and payload["latest"][0]["phase"] == "rolled_back"


def test_status_wait_with_json_stops_at_the_asked_phase_or_times_out(held: Harness) -> None:
    reached = runner.invoke(
        app,
        [
            "rollout",
            "status",
            "fraud-test-0001",
            "--wait",
            "--until",
            "held",
            "-o",
            "json",
            *NO_REGISTRY,
        ],
    )
    assert reached.exit_code == 0, reached.output
    assert json.loads(reached.stdout.strip().splitlines()[-1])["state"]["phase"] == "held"
    waited = runner.invoke(
        app,
        [
            "rollout",
            "status",
            "fraud-test-0001",
            "--wait",
            "--until",
            "promoted",
            "--timeout",
            "1s",
            "-o",
            "json",
            *NO_REGISTRY,
        ],
    )
    assert waited.exit_code == 3, waited.output
    assert "timed out" in waited.output
    bad = runner.invoke(app, ["rollout", "status", "fraud-test-0001", "--wait", "--until", "dun"])
    assert bad.exit_code == 2 and "--until takes one of" in bad.output


def test_rollback_of_an_unknown_model_says_so_and_suggests_a_name(rolled_back: Harness) -> None:
    result = runner.invoke(app, ["rollback", "frud", *NO_REGISTRY])
    assert result.exit_code == 2, result.output
    assert "no rollout id or model 'frud'" in result.output
    assert "did you mean 'fraud'?" in result.output and "nothing was changed" in result.output


def test_time_left_says_what_the_stage_waits_for(harness: Harness) -> None:
    from gray.cli.display import time_left

    now = harness.clock.now()
    running = harness.state(phase=Phase.RUNNING, deadline=now + 90)
    assert time_left(running, now) == "dwell left 1m30s"
    assert time_left(running.with_(extensions=1), now) == "extended (1x), 1m30s left"
    assert (
        time_left(running.with_(deadline=now - 1), now) == "dwell over: deciding at the next look"
    )
    holding = running.with_(deadline=now - 1, nodata_since=now - 5)
    assert time_left(holding, now) == "dwell over, no candidate data yet: holding"
