"""Every operation in controller/rollouts.py, called as the CLI calls it: a real sqlite MLflow
registry holding the demo models, the in-memory endpoint and metrics of tests/fakes.py, and
a real local journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gray.controller import loop, rollouts
from gray.controller.errors import (
    ConfigError,
    PreflightError,
    RolloutActiveError,
    RolloutError,
)
from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.operator import saved_endpoint
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import Plan
from gray.controller.registry import Registry
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.state import Phase
from gray.controller.types import Applied, Lease, RouteSpec
from tests.fakes import FakeClock, FakeMetrics, FakeRouter

ROUTER_URL = "http://127.0.0.1:9"


def plan_text(registry_uri: str, candidate: str = "@challenger") -> str:
    return f"""\
name: operations
model: {{name: fraud, baseline: "@champion", candidate: "{candidate}"}}
registry: {{uri: "{registry_uri}"}}
router: {{type: gateway, url: "{ROUTER_URL}"}}
interval: 1s
gates: [{{metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%}}]
stages:
  - {{name: canary, weight: 10%, dwell: 20s}}
  - {{name: full, weight: 100%, dwell: 10s}}
"""


class Parts:
    """A plan of the demo registry and what preflight talks to."""

    def __init__(self, registry_uri: str, home: Path) -> None:
        self.text = plan_text(registry_uri)
        self.plan: Plan = parse_plan(self.text, "plan.yaml", environ={})
        self.registry = Registry(registry_uri)
        pinned = self.registry.pin(self.plan.model)
        self.baseline, self.candidate = pinned.baseline.version, pinned.candidate.version
        self.router = FakeRouter(baseline=self.baseline)
        self.router.preprocessors = {
            pinned.baseline.version: pinned.baseline.preprocessor_sha256,
            pinned.candidate.version: pinned.candidate.preprocessor_sha256,
        }
        self.metrics = FakeMetrics(FakeClock(), self.router)
        self.journal = Journal(LocalJournal(home))

    def preflight(self) -> rollouts.PreflightReport:
        return rollouts.preflight(self.plan, self.registry, self.router, self.metrics, self.journal)

    def start(self, rollout_id: str = "fraud-ops-0001") -> loop.Step:
        report = self.preflight()
        return rollouts.create_rollout(
            self.plan, self.text, report, self.journal, rollout_id=rollout_id, now=100.0
        )


@pytest.fixture
def parts(demo_registry: Any, tmp_path: Path) -> Parts:
    return Parts(demo_registry.uri, tmp_path / "home")


def failed_checks(error: PreflightError) -> dict[str, str]:
    return {check.name: check.detail for check in error.checks if not check.ok}


# --- preflight -------------------------------------------------------------------


def test_preflight_passes_every_check_before_any_traffic(parts: Parts) -> None:
    report = parts.preflight()
    assert [(c.name, c.ok) for c in report.checks] == [
        ("versions", True),
        ("baseline preprocessor", True),
        ("candidate preprocessor", True),
        ("endpoint", True),
        ("baseline loaded", True),
        ("candidate loaded", True),
        ("metrics", True),
    ]
    assert (report.baseline, report.candidate) == (parts.baseline, parts.candidate)
    assert parts.router.writes == []  # nothing was written
    assert parts.candidate in parts.router.loaded


def test_preflight_refuses_an_endpoint_already_splitting_traffic(parts: Parts) -> None:
    split = RouteSpec(baseline=parts.baseline, candidate=parts.candidate, weight=0.2)
    parts.router.applied = Applied(split, Lease("fraud-other-0001", 4))
    with pytest.raises(PreflightError, match="nothing was changed") as refused:
        parts.preflight()
    assert "under rollout fraud-other-0001" in failed_checks(refused.value)["endpoint split"]


def test_preflight_refuses_an_endpoint_serving_another_baseline(parts: Parts) -> None:
    parts.router.applied = Applied(RouteSpec(baseline=parts.candidate), None)
    with pytest.raises(PreflightError) as refused:
        parts.preflight()
    assert "users would switch version" in failed_checks(refused.value)["endpoint baseline"]


def test_preflight_refuses_a_version_loaded_with_another_preprocessor(parts: Parts) -> None:
    parts.router.preprocessors[parts.candidate] = "0" * 64
    with pytest.raises(PreflightError) as refused:
        parts.preflight()
    detail = failed_checks(refused.value)["candidate loaded"]
    assert "must load it again with its bound preprocessor" in detail


def test_preflight_refuses_an_unreachable_endpoint_and_a_broken_metrics_source(
    parts: Parts,
) -> None:
    parts.router.unreachable = True
    with pytest.raises(PreflightError) as refused:
        parts.preflight()
    assert failed_checks(refused.value) == {"endpoint": "connection refused"}
    parts.router.unreachable = False
    parts.metrics.broken = True
    with pytest.raises(PreflightError) as refused:
        parts.preflight()
    assert failed_checks(refused.value) == {"metrics": "metrics endpoint unreachable"}


def test_preflight_refuses_a_version_the_registry_cannot_resolve(
    demo_registry: Any, tmp_path: Path
) -> None:
    text = plan_text(demo_registry.uri, candidate="@nobody")
    plan = parse_plan(text, "plan.yaml", environ={})
    router = FakeRouter(baseline="1")
    with pytest.raises(PreflightError) as refused:
        rollouts.preflight(
            plan,
            Registry(demo_registry.uri),
            router,
            FakeMetrics(FakeClock(), router),
            Journal(LocalJournal(tmp_path)),
        )
    assert list(failed_checks(refused.value)) == ["versions"]
    assert "nobody" in failed_checks(refused.value)["versions"]


def test_preflight_refuses_a_second_rollout_of_the_same_model(parts: Parts) -> None:
    _journal_start(parts)
    with pytest.raises(RolloutActiveError, match="gray rollout abort fraud-ops-0001"):
        parts.preflight()


# --- start, resume, commands ------------------------------------------------------------


def test_create_rollout_takes_the_next_epoch_and_journals_the_start(parts: Parts) -> None:
    parts.router.applied = Applied(RouteSpec(baseline=parts.baseline), Lease("old", 6))
    step = parts.start()
    assert step.state.epoch == 7 and step.state.phase is Phase.STARTING
    assert (step.state.baseline, step.state.candidate) == (parts.baseline, parts.candidate)
    assert isinstance(step.actions[0], loop.Record)
    assert step.actions[0].event is EventKind.STARTED
    # The plan is journaled as written; the first event is the runner's to write.
    folder = parts.journal.local.root / "fraud-ops-0001"
    assert (folder / "plan.yaml").read_text(encoding="utf-8") == parts.text
    endpoint = saved_endpoint(parts.journal.local, "fraud-ops-0001")
    assert endpoint is not None and endpoint.url == ROUTER_URL


def test_stage_number_reads_a_number_or_a_name(parts: Parts) -> None:
    assert rollouts.stage_number(parts.plan, None) is None
    assert rollouts.stage_number(parts.plan, "2") == 1
    assert rollouts.stage_number(parts.plan, "canary") == 0
    with pytest.raises(ConfigError, match="middle"):
        rollouts.stage_number(parts.plan, "middle")


def _journal_start(parts: Parts) -> None:
    step = parts.start()
    parts.journal.append(step.state, EventKind.STARTED, "started", {})
    running = step.state.with_(phase=Phase.RUNNING, stage_started_at=100.0, deadline=120.0)
    parts.journal.append(running, EventKind.STAGE_STARTED, "stage 1", {})


def test_prepare_resume_fences_with_a_new_epoch_and_reconfirms_the_route(parts: Parts) -> None:
    _journal_start(parts)
    plan, step = rollouts.prepare_resume(parts.journal, "fraud-ops-0001", "full", now=130.0)
    assert plan.name == "operations"
    assert step.state.epoch == 2 and step.state.until_stage == 1
    assert [type(a).__name__ for a in step.actions] == ["Record", "ApplyStage"]
    assert isinstance(step.actions[1], loop.ApplyStage) and not step.actions[1].fresh


def test_an_ended_rollout_is_neither_resumed_nor_sent_commands(parts: Parts) -> None:
    _journal_start(parts)
    state = parts.journal.load("fraud-ops-0001").state
    ended = state.with_(phase=Phase.ROLLED_BACK, reason="rolled back by the pager")
    parts.journal.append_terminal(ended, EventKind.ROLLED_BACK, ended.reason, {})
    with pytest.raises(RolloutError, match="already ended: rolled_back"):
        rollouts.prepare_resume(parts.journal, "fraud-ops-0001", None)
    with pytest.raises(RolloutError, match="already ended"):
        rollouts.send_command(parts.journal, "fraud-ops-0001", "approve")


def test_send_command_posts_it_for_the_controller(parts: Parts) -> None:
    _journal_start(parts)
    state, plan = rollouts.send_command(parts.journal, "fraud-ops-0001", "pause", "spike")
    assert state.phase is Phase.RUNNING and plan.name == "operations"
    [posted] = parts.journal.commands("fraud-ops-0001")
    assert (posted.command, posted.reason) == ("pause", "spike")
    with pytest.raises(ConfigError, match="unknown command 'dance'"):
        rollouts.send_command(parts.journal, "fraud-ops-0001", "dance")


# --- the parts a controller runs with ---------------------------------------------


def test_build_adapters_makes_the_plans_router_and_metrics_source(parts: Parts) -> None:
    router, metrics = rollouts.build_adapters(parts.plan)
    assert isinstance(router, GatewayRouter) and isinstance(metrics, GatewayMetrics)


@pytest.fixture
def set_up(
    demo_registry: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[rollouts.Setup]:
    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(demo_registry.uri), encoding="utf-8")
    setup = rollouts.set_up(path, None, "canary", lambda text: None)
    yield setup
    assert isinstance(setup.journal.remote, BackgroundRemote)
    setup.journal.remote.close(5.0)


def test_set_up_opens_each_part_once_with_mlflow_off_the_decision_path(
    set_up: rollouts.Setup, demo_registry: Any
) -> None:
    assert set_up.plan.name == "operations" and set_up.until == 0
    assert set_up.plan_text.startswith("name: operations")
    assert set_up.registry.uri == demo_registry.uri
    assert isinstance(set_up.journal.remote, BackgroundRemote)
    assert isinstance(set_up.router, GatewayRouter)
    assert isinstance(set_up.metrics, GatewayMetrics)
