"""Rate gates on a source that counts per routing-key group: the clustered test decides, says
so, keeps its state across a journal round trip, decides as its kernel does, and gives way to
the per-request test (which says it assumes independent requests) when groups stop coming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gray.controller import gates
from gray.controller.gates import JudgeState, Outcome
from gray.controller.gates.families.count import rule_for
from gray.controller.gates.stats.clustered import ClusteredTrack
from gray.controller.types import ROUTING_GROUPS, GroupCounts, Snapshot, VersionCounters

from ..conftest import gate

ERROR_GATE = [gate("error_rate", max_increase="10%")]


def counters(errors: np.ndarray, requests: np.ndarray, *, grouped: bool = True) -> VersionCounters:
    """A version's cumulative counters from per-group totals."""
    groups = GroupCounts(
        requests=tuple(int(x) for x in requests), errors=tuple(int(x) for x in errors)
    )
    return VersionCounters(
        requests=int(requests.sum()), errors=int(errors.sum()), groups=groups if grouped else None
    )


class GroupedTraffic:
    """Cumulative per-group counts of a stage, read like a source that counts by group."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.totals = {name: np.zeros((2, ROUTING_GROUPS), dtype=np.int64) for name in ("c", "b")}
        self.now = 1_000.0

    def look(self, candidate_rate: float, baseline_rate: float) -> tuple[np.ndarray, ...]:
        increments = []
        for name, rate in (("c", candidate_rate), ("b", baseline_rate)):
            requests = self.rng.poisson(12.0, ROUTING_GROUPS)
            errors = self.rng.binomial(requests, rate)
            self.totals[name] += np.stack([errors, requests])
            increments += [errors, requests]
        return tuple(increments)

    def snapshot(self, *, grouped: bool = True) -> Snapshot:
        self.now += 30.0
        return Snapshot(
            taken_at=self.now,
            candidate=counters(*self.totals["c"], grouped=grouped),
            baseline=counters(*self.totals["b"], grouped=grouped),
        )


def test_with_group_counts_the_clustered_test_decides_as_its_kernel_and_says_so() -> None:
    traffic = GroupedTraffic(seed=4)
    state = gates.start_stage(ERROR_GATE, 0.05, traffic.snapshot(), exposure="live")
    track = ClusteredTrack(rule_for(state.gates[0].config), runs=1, groups=ROUTING_GROUPS)
    outcomes = []
    for _ in range(12):
        ce, cn, be, bn = traffic.look(0.03, 0.01)
        track.add(ce[None], cn[None], be[None], bn[None])
        state, verdict = gates.observe(state, traffic.snapshot())
        judged = verdict.verdicts[0]
        assert judged.method == "clustered"
        assert (judged.outcome is Outcome.FAIL) == bool(track.fails()[0])
        low, high = track.ratio_bounds()
        assert judged.interval == pytest.approx((float(low[0]), float(high[0])))
        outcomes.append(judged.outcome)
        # The state goes through the journal and judges on exactly as before.
        state = JudgeState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert outcomes[-1] is Outcome.FAIL
    final = verdict.verdicts[0]
    assert final.to_dict()["method"] == "clustered"
    assert final.counts["groups"] == ROUTING_GROUPS
    assert final.p_value is not None and final.p_value <= final.alpha
    assert f"requests ({ROUTING_GROUPS} routing-key groups): FAIL" in final.sentence()


def test_when_groups_stop_coming_the_per_request_test_takes_over_and_says_so() -> None:
    traffic = GroupedTraffic(seed=5)
    state = gates.start_stage(ERROR_GATE, 0.05, traffic.snapshot(), exposure="live")
    for _ in range(3):
        traffic.look(0.01, 0.01)
        state, verdict = gates.observe(state, traffic.snapshot())
    assert verdict.verdicts[0].method == "clustered"
    traffic.look(0.01, 0.01)
    state, verdict = gates.observe(state, traffic.snapshot(grouped=False))
    traffic.look(0.01, 0.01)
    state, verdict = gates.observe(state, traffic.snapshot())  # groups again: too late
    judged = verdict.verdicts[0]
    assert judged.method == "per_request"
    assert judged.counts["candidate_requests"] == int(traffic.totals["c"][1].sum())
    assert "(assumed independent: no counts per routing-key group)" in judged.sentence()
    assert "grouped" not in state.to_dict()["gates"][0]


def test_a_clean_candidate_passes_by_groups_on_its_absolute_allowance() -> None:
    """No errors on either version: the difference is shown to be under the allowance."""
    traffic = GroupedTraffic(seed=6)
    spec = [gate("error_rate", max_increase="10%", max_increase_abs="0.1%")]
    state = gates.start_stage(spec, 0.05, traffic.snapshot(), exposure="live")
    for _ in range(20):
        traffic.look(0.0, 0.0)
        state, verdict = gates.observe(state, traffic.snapshot())
    judged = verdict.verdicts[0]
    assert judged.method == "clustered"
    assert judged.outcome is Outcome.PASS
    assert judged.extra["difference_high"] is not None
    assert judged.extra["difference_high"] <= 0.001
