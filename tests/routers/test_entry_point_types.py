"""A router type and a metrics type from another package: one module plus two entry
points (tests/routers/toy_router_pkg), and a whole rollout runs through them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller import rollouts
from gray.controller.errors import PlanError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.loop import begin
from gray.controller.notify import Notifier
from gray.controller.plan.loading import parse_plan
from gray.controller.plugins import ROUTER_TYPES
from gray.controller.runner import Runner
from gray.controller.state import Phase
from tests.fakes import FakeClock, FakeRegistry, rollout_state

PLAN = """\
name: toy-rollout
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
router: {{type: toy, path: "{route}"}}
metrics: {{type: toy, route: "{route}", error_rates: {{"1": 0.01, "2": {candidate_errors}}}}}
interval: 1s
gates:
  - {{metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%, min_samples: 200}}
stages:
  - {{weight: 10%, dwell: 20s}}
  - {{weight: 100%, dwell: 10s}}
promote: {{alias: champion, keep_previous_as: previous-champion}}
"""

pytestmark = pytest.mark.usefixtures("toy_installed")


def run_toy_rollout(tmp_path: Path, candidate_errors: float) -> tuple[int, Phase, dict]:
    """Start and run a rollout of the toy plan through the real loop and runner."""
    route = tmp_path / "route.json"
    text = PLAN.format(route=route, candidate_errors=candidate_errors)
    plan = parse_plan(text, "toy.yaml", environ={})
    router, metrics = rollouts.build_adapters(plan)
    clock = FakeClock()
    journal = Journal(LocalJournal(tmp_path / "home"))
    runner = Runner(plan, router, metrics, FakeRegistry(), journal, Notifier(plan.notify), clock)
    state = rollout_state("fraud-toy-0001", plan_name=plan.name, started_at=clock.now())
    journal.create(state, text)
    result = runner.run(begin(plan, state))
    return result.exit_code, result.state.phase, json.loads(route.read_text())


def test_a_good_candidate_is_promoted_through_the_toy_endpoint(tmp_path: Path) -> None:
    code, phase, route = run_toy_rollout(tmp_path, candidate_errors=0.01)
    assert (code, phase) == (0, Phase.PROMOTED)
    assert route["route"]["baseline"] == "2"
    assert route["route"]["weight"] == 0


def test_a_bad_candidate_is_rolled_back_through_the_toy_endpoint(tmp_path: Path) -> None:
    code, phase, route = run_toy_rollout(tmp_path, candidate_errors=0.2)
    assert (code, phase) == (1, Phase.ROLLED_BACK)
    assert route["route"]["baseline"] == "1"
    assert route["route"]["weight"] == 0


def test_the_toy_blocks_are_read_as_the_toy_models(tmp_path: Path) -> None:
    plan = parse_plan(PLAN.format(route=tmp_path / "r.json", candidate_errors=0.2), "toy.yaml")
    assert type(plan.router).__name__ == "ToyRouterSpec"
    assert type(plan.metrics).__name__ == "ToyMetricsSpec"
    assert plan.metrics.error_rates == {"1": 0.01, "2": 0.2}  # type: ignore[attr-defined]


def test_gray_plan_validate_accepts_a_toy_plan(tmp_path: Path) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(PLAN.format(route=tmp_path / "r.json", candidate_errors=0.01))
    result = CliRunner().invoke(app, ["plan", "validate", str(path)])
    assert result.exit_code == 0, result.output


def test_a_bad_toy_field_is_reported_by_the_toy_model(tmp_path: Path) -> None:
    text = PLAN.format(route=tmp_path / "r.json", candidate_errors=0.01).replace(
        "type: toy, path:", "type: toy, pth:"
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "toy.yaml")
    assert [problem.render() for problem in caught.value.problems] == [
        "toy.yaml:3:9: router.path: required field 'path' is missing",
        "toy.yaml:3:21: router.pth: unknown field 'pth'; did you mean 'path'?",
    ]


def test_an_unknown_type_names_every_installed_type() -> None:
    known = ROUTER_TYPES.names()
    assert known[:2] == ("gateway", "haproxy") and known[-1] == "toy"  # gray's own first
    text = PLAN.format(route="r.json", candidate_errors=0.01).replace(
        "type: toy, path", "type: nonesuch, path"
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "toy.yaml")
    assert [p.render() for p in caught.value.problems] == [
        f"toy.yaml:3:16: router.type: expected one of {', '.join(known)}, got 'nonesuch'"
    ]
