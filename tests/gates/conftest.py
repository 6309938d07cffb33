"""Builders for the gate tests: plan gates and cumulative snapshots made from increments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gray.controller import gates
from gray.controller.plan.models import GateSpec
from gray.controller.types import ShadowCounters, Snapshot, VersionCounters


def gate(metric: str, **fields: Any) -> GateSpec:
    return GateSpec.model_validate({"metric": metric, **fields})


@dataclass
class Side:
    """Cumulative counters for one version, grown look by look."""

    requests: int = 0
    errors: int = 0
    bad_requests: int = 0
    labelled: int = 0
    correct: int = 0
    replayed_failures: int = 0
    baseline_also_failed: int = 0
    slow: dict[float, int] = field(default_factory=dict)
    buckets: dict[float, int] = field(default_factory=dict)

    def counters(self) -> VersionCounters:
        return VersionCounters(
            requests=self.requests,
            errors=self.errors,
            bad_requests=self.bad_requests,
            labelled=self.labelled,
            correct=self.correct,
            replayed_failures=self.replayed_failures,
            baseline_also_failed=self.baseline_also_failed,
            slow=tuple(sorted(self.slow.items())),
            latency_buckets=tuple(sorted(self.buckets.items())),
        )


@dataclass
class Traffic:
    """Cumulative traffic of a stage; `add` grows it, `snapshot` reads it like a source."""

    candidate: Side = field(default_factory=Side)
    baseline: Side = field(default_factory=Side)
    shadow_candidate: Side = field(default_factory=Side)
    shadow_baseline: Side = field(default_factory=Side)
    pairs: int = 0
    disagreements: int = 0
    now: float = 1_000.0

    def add(self, side: str = "candidate", **counts: Any) -> Traffic:
        target: Side = getattr(self, side)
        for name, value in counts.items():
            if name in ("slow", "buckets"):
                store = getattr(target, name)
                for edge, count in value.items():
                    store[edge] = store.get(edge, 0) + count
            else:
                setattr(target, name, getattr(target, name) + value)
        return self

    def mirror(self, pairs: int, disagreements: int) -> Traffic:
        self.pairs += pairs
        self.disagreements += disagreements
        return self

    def snapshot(self) -> Snapshot:
        self.now += 30.0
        return Snapshot(
            taken_at=self.now,
            baseline=self.baseline.counters(),
            candidate=self.candidate.counters(),
            shadow=ShadowCounters(
                pairs=self.pairs,
                disagreements=self.disagreements,
                baseline=self.shadow_baseline.counters(),
                candidate=self.shadow_candidate.counters(),
            ),
        )


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


def judge(specs: list, looks: list[dict], *, exposure: str = "live") -> list[gates.StageVerdict]:
    """A fresh stage judged look by look; a look maps sides to increments, `pairs` to
    (pairs, disagreements)."""
    traffic = Traffic()
    state = gates.start_stage(specs, 0.05, traffic.snapshot(), exposure=exposure)
    verdicts = []
    for look in looks:
        for side, counts in look.items():
            if side == "pairs":
                traffic.mirror(*counts)
            else:
                traffic.add(side, **counts)
        state, verdict = gates.observe(state, traffic.snapshot())
        verdicts.append(verdict)
    return verdicts
