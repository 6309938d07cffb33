"""Anytime validity by simulation: confidence sequences cover the truth at every look at once,
and good candidates are rolled back at most alpha of the time over a whole stage of looks.

The simulations run the batched kernels (`CountTrack`, `proportion`, `cdf`) that the gates
themselves call; the last test checks that the public API decides exactly as the kernel does
on the same traffic, so what is shown here holds for `start_stage` / `observe`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gray.controller import gates
from gray.controller.gates.stats import cdf, proportion
from gray.controller.gates.stats.counts import CountRule, CountTrack

from ..conftest import Traffic, gate

ALPHA = 0.05


def clearly_above(failures: int, runs: int, alpha: float = ALPHA) -> bool:
    """True when the rate is above alpha by more than three standard errors."""
    return failures / runs > alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_ratio_bounds_cover_the_truth_at_every_look() -> None:
    """Shares and the base rate both move from look to look; the ratio stays 1.5."""
    rng = np.random.default_rng(11)
    runs, looks, true_ratio = 800, 40, 1.5
    track = CountTrack(CountRule(alpha=ALPHA, max_increase=0.1), runs)
    low_missed = np.zeros(runs, dtype=bool)
    high_missed = np.zeros(runs, dtype=bool)
    for look in range(looks):
        share = rng.uniform(0.05, 0.9, runs)
        base_rate = 0.01 * (1 + 0.8 * math.sin(look / 5))
        n = rng.poisson(400, runs)
        nc = rng.binomial(n, share)
        c = rng.binomial(nc, base_rate * true_ratio)
        b = rng.binomial(n - nc, base_rate)
        track.add(c, nc, b, n - nc)
        low, high = track.ratio_bounds()
        low_missed |= low > true_ratio
        high_missed |= high < true_ratio
    # Each one-sided bound is built at the ratio's share of alpha.
    assert not clearly_above(int(low_missed.sum()), runs, CountRule(ALPHA).ratio_alpha)
    assert not clearly_above(int(high_missed.sum()), runs, CountRule(ALPHA).ratio_alpha)


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_false_rollbacks_stay_under_alpha_at_the_margin(share: float) -> None:
    """The hardest good candidate: exactly at its allowance (+10 %) for 60 looks."""
    rng = np.random.default_rng(7)
    runs, looks, base_rate = 2000, 60, 0.02
    track = CountTrack(CountRule(alpha=ALPHA, max_increase=0.1), runs)
    failed = np.zeros(runs, dtype=bool)
    for _ in range(looks):
        n = rng.poisson(600, runs)
        nc = rng.binomial(n, share)
        c = rng.binomial(nc, base_rate * 1.1)
        b = rng.binomial(n - nc, base_rate)
        track.add(c, nc, b, n - nc)
        failed |= track.fails()
    assert not clearly_above(int(failed.sum()), runs)


def test_false_rollbacks_stay_under_alpha_with_an_absolute_allowance() -> None:
    """Candidate exactly 0.2 points worse with a 0.2-point allowance and a 10 % margin."""
    rng = np.random.default_rng(5)
    runs, looks = 1500, 40
    track = CountTrack(CountRule(alpha=ALPHA, max_increase=0.1, max_increase_abs=0.002), runs)
    failed = np.zeros(runs, dtype=bool)
    for _ in range(looks):
        n = rng.poisson(1000, runs)
        nc = rng.binomial(n, 0.3)
        c = rng.binomial(nc, 0.003)
        b = rng.binomial(n - nc, 0.001)
        track.add(c, nc, b, n - nc)
        failed |= track.fails()
    assert not clearly_above(int(failed.sum()), runs)


def test_rate_bounds_cover_the_truth_at_every_look() -> None:
    rng = np.random.default_rng(3)
    runs, looks, rate = 1000, 50, 0.02
    events = np.zeros(runs)
    trials = np.zeros(runs)
    missed = np.zeros(runs, dtype=bool)
    for _ in range(looks):
        n = rng.integers(1, 300, runs)
        events += rng.binomial(n, rate)
        trials += n
        low, high = proportion.confidence_bounds(events, trials, ALPHA)
        missed |= (low > rate) | (high < rate)
    assert not clearly_above(int(missed.sum()), runs)


def test_distribution_bands_cover_the_truth_at_every_look() -> None:
    rng = np.random.default_rng(9)
    runs, looks, per_look = 300, 30, 100
    edges = np.geomspace(0.005, 0.5, 60)
    true_cdf = np.array(
        [0.5 * (1 + math.erf(math.log(e / 0.04) / (0.5 * math.sqrt(2)))) for e in edges]
    )
    counts = np.zeros((runs, edges.size))
    missed = np.zeros(runs, dtype=bool)
    for look in range(1, looks + 1):
        samples = rng.lognormal(math.log(0.04), 0.5, (runs, per_look))
        counts += (samples[:, :, None] <= edges).sum(axis=1)
        n = look * per_look
        deviation = np.max(np.abs(counts / n - true_cdf), axis=1)
        missed |= deviation > cdf.band_radius(n, ALPHA)
    assert not clearly_above(int(missed.sum()), runs)


def test_the_public_api_decides_exactly_as_the_kernel() -> None:
    rng = np.random.default_rng(21)
    runs, looks = 12, 15
    rule = CountRule(alpha=ALPHA, max_increase=0.1)
    track = CountTrack(rule, runs)
    traffic = [Traffic() for _ in range(runs)]
    states = [
        gates.start_stage(
            [gate("error_rate", max_increase="10%")], ALPHA, t.snapshot(), exposure="live"
        )
        for t in traffic
    ]
    for _ in range(looks):
        n = rng.poisson(800, runs)
        nc = rng.binomial(n, 0.3)
        c = rng.binomial(nc, 0.03)
        b = rng.binomial(n - nc, 0.02)
        track.add(c, nc, b, n - nc)
        low, high = track.ratio_bounds()
        for i in range(runs):
            traffic[i].add("candidate", requests=int(nc[i]), errors=int(c[i]))
            traffic[i].add("baseline", requests=int(n[i] - nc[i]), errors=int(b[i]))
            states[i], verdict = gates.observe(states[i], traffic[i].snapshot())
            judged = verdict.verdicts[0]
            assert (judged.outcome is gates.Outcome.FAIL) == bool(track.fails()[i])
            assert judged.interval == pytest.approx((low[i], high[i]))
