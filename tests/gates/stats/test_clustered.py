"""The clustered test (rate gates with counts per routing-key group) on simulated traffic.

Keys that fail often on both versions break the per-request test's independence: it rolls
back good candidates far above alpha, while the clustered test stays at or under alpha,
at any look and at the margin, and still catches a real regression. The traffic comes from
the gates benchmark's simulator (heavy keys keep their group and version for a stage).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from gray.controller.gates.stats.clustered import ClusteredTrack, log_evidence, squared_boundary
from gray.controller.gates.stats.counts import CountRule, CountTrack
from gray.controller.types import ROUTING_GROUPS
from tests.scripts import load_benchmark

from .test_validity import ALPHA, clearly_above


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("gates")


def test_the_boundary_is_where_the_evidence_reaches_one_over_alpha() -> None:
    rng = np.random.default_rng(2)
    statistic = rng.normal(0.0, 30.0, 20_000)
    variance = rng.uniform(0.0, 600.0, 20_000)
    by_boundary = (statistic > 0) & (statistic**2 >= squared_boundary(variance, ALPHA))
    by_evidence = log_evidence(statistic, variance) >= np.log(1 / ALPHA)
    assert by_boundary.sum() > 1000
    assert np.array_equal(by_boundary, by_evidence)


def test_per_request_false_alarms_on_clustered_errors_and_the_clustered_test_does_not(
    bench: ModuleType,
) -> None:
    """Ten keys send 30 % of the requests and a fifth of theirs fail, on either version."""
    rng = np.random.default_rng(17)
    setup = bench.Setup(dwell=900.0)
    runs = 200
    rule = CountRule(alpha=ALPHA, max_increase=0.1)
    failed = {"clustered": np.zeros(runs, dtype=bool), "per_request": np.zeros(runs, dtype=bool)}
    for share in (0.05, 0.5):
        traffic = bench.KeyedErrors(setup, share, bench.HeavyKeys(10, 0.3, 0.2), runs, rng)
        clustered, per_request = ClusteredTrack(rule, runs, ROUTING_GROUPS), CountTrack(rule, runs)
        for _ in range(setup.looks):
            look = traffic.next_look()
            (ce, cn), (be, bn) = look["candidate"], look["baseline"]
            clustered.add(ce, cn, be, bn)
            per_request.add(ce.sum(axis=1), cn.sum(axis=1), be.sum(axis=1), bn.sum(axis=1))
            failed["clustered"] |= clustered.fails()
            failed["per_request"] |= per_request.fails()
    assert failed["per_request"].mean() > 4 * ALPHA
    assert not clearly_above(int(failed["clustered"].sum()), runs)


@pytest.mark.parametrize("max_increase_abs", [None, 0.002])
def test_clustered_false_rollbacks_stay_under_alpha_at_the_margin(
    max_increase_abs: float | None,
) -> None:
    """Independent requests, the candidate exactly at its allowance for 40 looks: the
    time-uniform part of the guarantee, where the per-look evidence is freshest."""
    rng = np.random.default_rng(29)
    runs, looks, base = 300, 40, 0.01
    rule = CountRule(alpha=ALPHA, max_increase=0.1, max_increase_abs=max_increase_abs)
    worst = max(base * 1.1, base + (max_increase_abs or 0.0))
    track = ClusteredTrack(rule, runs, ROUTING_GROUPS)
    failed = np.zeros(runs, dtype=bool)
    for _ in range(looks):
        cn = rng.poisson(12.0, (runs, ROUTING_GROUPS))
        bn = rng.poisson(12.0, (runs, ROUTING_GROUPS))
        track.add(rng.binomial(cn, worst), cn, rng.binomial(bn, base), bn)
        failed |= track.fails()
    assert not clearly_above(int(failed.sum()), runs)


def test_clustered_test_catches_twice_the_errors_and_brackets_the_ratio() -> None:
    rng = np.random.default_rng(31)
    runs, looks = 300, 20
    track = ClusteredTrack(CountRule(alpha=ALPHA, max_increase=0.1), runs, ROUTING_GROUPS)
    for _ in range(looks):
        cn = rng.poisson(12.0, (runs, ROUTING_GROUPS))
        bn = rng.poisson(12.0, (runs, ROUTING_GROUPS))
        track.add(rng.binomial(cn, 0.02), cn, rng.binomial(bn, 0.01), bn)
    assert track.fails().mean() > 0.95
    low, high = track.ratio_bounds()
    assert np.mean((low <= 2.0) & (high >= 2.0)) > 1 - 2 * ALPHA


def test_with_no_baseline_event_yet_large_ratios_are_not_ruled_out() -> None:
    """13 candidate errors and none on the baseline at an even split: a ratio of 8 would
    give that 22 % of the time, so the lower bound must stay below it (the plug-in variance
    alone, zero for the baseline, ruled out every ratio up to 64)."""
    track = ClusteredTrack(CountRule(alpha=ALPHA, max_increase=0.1), 1, ROUTING_GROUPS)
    requests = np.full((1, ROUTING_GROUPS), 6.0)
    errors = np.zeros((1, ROUTING_GROUPS))
    errors[0, :13] = 1.0
    track.add(errors, requests, np.zeros_like(errors), requests)
    low, _ = track.ratio_bounds()
    assert 1.0 < low[0] < 8.0
