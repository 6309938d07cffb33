"""A real journal for the report's tests, written by the real loop and runner in a second:
fake clock, router and metrics (with a latency histogram), every kind of mark a report
draws (a shadow stage, an extension, a pause, an approval) and a gate's rollback."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from gray.controller.journal import Event, RolloutRecord, merged
from gray.controller.plan.models import Plan
from gray.controller.types import Pair, ShadowCounters, Snapshot, VersionCounters
from tests.fakes import FakeMetrics, VersionBehaviour
from tests.loop.conftest import Harness

ROLLOUT = "fraud-test-0001"
PLAN = """\
name: report-test
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
interval: 5s
gates:
  - {metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%, min_samples: 200}
  - {metric: latency, slo: 250ms, max_increase: 20%, max_increase_abs: 1%}
stages:
  - {name: shadow, mirror: 100%, dwell: 30s, gates: [{metric: disagreement, max: 5%}]}
  - {name: canary, weight: 10%, dwell: 30s, min_requests: 999999}
  - {weight: 50%, dwell: 30s, approval: true}
  - {weight: 100%, dwell: 60s}
policies:
  inconclusive: {extend: 10s, max_extensions: 1, then: pass}
promote: {alias: champion, keep_previous_as: previous-champion}
"""
EDGES = (*tuple(0.001 * 1.5**i for i in range(24)), math.inf)
SLO_EDGES = (0.25,)
MEDIAN_SECONDS = {"1": 0.020, "2": 0.030}


@dataclass
class WithLatency:
    """The fake metrics, with each version's latency histogram (exponential, by median)."""

    metrics: FakeMetrics

    def snapshot(self, versions: Pair) -> Snapshot:
        snapshot = self.metrics.snapshot(versions)
        base, cand = versions.baseline, versions.candidate
        return replace(
            snapshot,
            baseline=_timed(snapshot.baseline, base),
            candidate=_timed(snapshot.candidate, cand),
            shadow=ShadowCounters(
                pairs=snapshot.shadow.pairs,
                disagreements=snapshot.shadow.disagreements,
                baseline=_timed(snapshot.shadow.baseline, base),
                candidate=_timed(snapshot.shadow.candidate, cand),
            ),
        )


def _timed(counters: VersionCounters, version: str) -> VersionCounters:
    rate = math.log(2) / MEDIAN_SECONDS.get(version, 0.02)
    n = counters.requests
    buckets = tuple((e, n if math.isinf(e) else int(n * (1 - math.exp(-rate * e)))) for e in EDGES)
    slow = tuple((e, n - int(n * (1 - math.exp(-rate * e)))) for e in SLO_EDGES)
    return replace(counters, latency_buckets=buckets, slow=slow)


@dataclass(frozen=True)
class RolloutJournal:
    record: RolloutRecord
    plan: Plan
    home: Path


def run_rollout(tmp: Path, patch: pytest.MonkeyPatch) -> RolloutJournal:
    """Walk every stage; a person pauses the canary and approves stage 3; the candidate
    turns bad at 100 % and its error gate rolls it back."""
    harness = Harness(tmp, PLAN)
    # Events are stamped by the journal's own clock: here the harness's fake one, so the
    # journal spans the minutes the rollout took on it rather than a second of real time.
    patch.setattr(merged, "time", SimpleNamespace(time=harness.clock.now))
    fake = harness.metrics
    fake.rps = 200
    harness.metrics = WithLatency(fake)  # type: ignore[assignment]
    runner = harness.runner()

    def person(event: Event) -> None:
        started = harness.events.count("stage_started")
        harness.events.append(event.event)
        if event.event == "stage_started" and started == 1:
            harness.journal.post_command(ROLLOUT, "pause", "a traffic spike")
        if event.event == "paused":
            harness.clock.sleep(20)
            harness.journal.post_command(ROLLOUT, "unpause")
        if event.event == "waiting_approval":
            harness.clock.sleep(15)
            harness.journal.post_command(ROLLOUT, "approve", "samples look right")
        if event.event == "stage_started" and started == 3:
            fake.behaviour["2"] = VersionBehaviour(error_rate=0.05)

    runner.on_event = person
    result = runner.run(harness.start())
    assert result.state.phase.value == "rolled_back", result.reason
    return RolloutJournal(harness.journal.load(ROLLOUT), harness.plan, tmp / "home")


@pytest.fixture(scope="session")
def rollout_journal(tmp_path_factory: pytest.TempPathFactory) -> RolloutJournal:
    with pytest.MonkeyPatch.context() as patch:
        return run_rollout(tmp_path_factory.mktemp("report-journal"), patch)
