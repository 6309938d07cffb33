"""The shift family: the latency-distribution gate on histograms, case by case."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gray.controller.gates import Outcome

from ..conftest import gate, judge

EDGES = (*(float(f"{0.001 * 1.25**i:.4g}") for i in range(40)), math.inf)


def histogram(median_seconds: float, requests: int, spread: float = 0.5) -> dict[float, int]:
    """Cumulative counts at EDGES for a lognormal latency (expected counts, no noise)."""
    from scipy.stats import lognorm

    distribution = lognorm(s=spread, scale=median_seconds)
    return {edge: round(requests * float(distribution.cdf(edge))) for edge in EDGES}


def latency_looks(candidate_median: float, per_look: int, looks: int) -> list[dict]:
    return [
        {
            "candidate": {"requests": per_look, "buckets": histogram(candidate_median, per_look)},
            "baseline": {"requests": per_look, "buckets": histogram(0.040, per_look)},
        }
        for _ in range(looks)
    ]


def test_a_slower_distribution_fails() -> None:
    spec = gate("latency_distribution", tolerance="5%")
    verdicts = judge([spec], latency_looks(0.040 * 1.3, 3000, 3))
    final = verdicts[-1].verdicts[0]
    assert final.outcome is Outcome.FAIL
    assert final.unit == "shift"
    assert final.interval is not None and final.interval[0] > 0.05
    assert final.p_value is not None and final.p_value <= final.alpha
    assert final.estimate is not None and 0.15 < final.estimate < 0.3
    sentence = final.sentence()
    assert sentence.startswith("latency distribution CDF up to 0.")
    assert "p50 " in sentence and sentence.endswith(": FAIL")


def test_the_same_distribution_passes_once_the_bands_are_narrow() -> None:
    spec = gate("latency_distribution", tolerance="5%")
    verdicts = judge([spec], latency_looks(0.040, 10_000, 3))
    assert verdicts[0].outcome is Outcome.INCONCLUSIVE
    assert verdicts[-1].outcome is Outcome.PASS
    final = verdicts[-1].verdicts[0]
    assert final.estimate == pytest.approx(0.0, abs=1e-3)
    assert final.interval is not None and final.interval[1] < 0.05


def test_a_faster_candidate_is_no_regression() -> None:
    spec = gate("latency_distribution", tolerance="5%")
    verdicts = judge([spec], latency_looks(0.040 * 0.5, 10_000, 3))
    assert verdicts[-1].outcome is Outcome.PASS


def test_no_histogram_is_nodata() -> None:
    spec = gate("latency_distribution", tolerance="5%")
    looks = [{"candidate": {"requests": 100}, "baseline": {"requests": 100}}]
    verdict = judge([spec], looks)[-1].verdicts[0]
    assert verdict.outcome is Outcome.NODATA
    assert "no latency histogram" in verdict.sentence()


def test_the_distribution_interval_only_narrows() -> None:
    spec = gate("latency_distribution", tolerance="5%")
    rng = np.random.default_rng(3)
    looks = []
    for _ in range(6):
        n = int(rng.integers(100, 2000))
        looks.append(
            {
                "candidate": {"requests": n, "buckets": histogram(0.04 * rng.uniform(0.9, 1.1), n)},
                "baseline": {"requests": n, "buckets": histogram(0.04, n)},
            }
        )
    intervals = [v.verdicts[0].interval for v in judge([spec], looks)]
    for before, after in itertools.pairwise(intervals):
        assert after[0] >= before[0] and after[1] <= before[1]
