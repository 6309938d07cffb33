from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller.journal import Journal, LocalJournal
from gray.controller.loop import Step, begin
from gray.controller.notify import Notifier
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import Plan
from gray.controller.runner import Runner
from gray.controller.state import RolloutState
from tests.fakes import (
    FakeClock,
    FakeMetrics,
    FakeRegistry,
    FakeRouter,
    VersionBehaviour,
    rollout_state,
)

PLAN = """\
name: loop-test
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
interval: 1s
gates:
  - {metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%, min_samples: 200}
stages:
  - {weight: 10%, dwell: 20s}
  - {weight: 50%, dwell: 20s}
  - {weight: 100%, dwell: 10s}
policies:
  inconclusive: {extend: 10s, max_extensions: 1, then: fail}
  no_data: {hold: 5s}
promote: {alias: champion, keep_previous_as: previous-champion}
"""


class Harness:
    def __init__(self, tmp_path: Path, plan_text: str = PLAN) -> None:
        self.plan_text = plan_text
        self.plan: Plan = parse_plan(plan_text, "plan.yaml", environ={})
        self.clock = FakeClock()
        self.router = FakeRouter(baseline="1")
        self.metrics = FakeMetrics(
            self.clock,
            self.router,
            rps=10000,
            behaviour={
                "1": VersionBehaviour(error_rate=0.01),
                "2": VersionBehaviour(error_rate=0.01),
            },
        )
        self.registry = FakeRegistry()
        self.journal = Journal(LocalJournal(tmp_path / "home"))
        self.events: list[str] = []

    def state(self, **changes: object) -> RolloutState:
        """`rollout_state` on the fake clock, not yet updated."""
        base = {"plan_name": self.plan.name, "started_at": self.clock.now(), "updated_at": 0.0}
        return rollout_state("fraud-test-0001", **{**base, **changes})

    def runner(self, **options: object) -> Runner:
        return Runner(
            self.plan,
            self.router,
            self.metrics,
            self.registry,
            self.journal,
            # Retries are exercised, with pauses short enough for a test.
            Notifier(self.plan.notify, first_pause=0.01),
            self.clock,
            on_event=lambda e: self.events.append(e.event),
            **options,  # type: ignore[arg-type]
        )

    def start(self, **state_changes: object) -> Step:
        state = self.state(**state_changes)
        self.journal.create(state, self.plan_text)
        return begin(self.plan, state)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)
