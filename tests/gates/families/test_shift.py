"""The latency-distribution gate (histograms) and the shadow-disagreement gate, case by case."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gray.controller import gates
from gray.controller.gates import Outcome

from .conftest import Traffic, gate

EDGES = (*(float(f"{0.001 * 1.25**i:.4g}") for i in range(40)), math.inf)


def histogram(median_seconds: float, requests: int, spread: float = 0.5) -> dict[float, int]:
    """Cumulative counts at EDGES for a lognormal latency (expected counts, no noise)."""
    from scipy.stats import lognorm

    distribution = lognorm(s=spread, scale=median_seconds)
    return {edge: round(requests * float(distribution.cdf(edge))) for edge in EDGES}


def judge(specs: list, looks: list[dict], *, exposure: str = "live") -> list[gates.StageVerdict]:
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


def shadow_looks(pairs: int, disagreements: int, looks: int) -> list[dict]:
    return [{"pairs": (pairs, disagreements)} for _ in range(looks)]


def test_disagreement_above_the_maximum_fails() -> None:
    spec = gate("disagreement", max="2%")
    final = judge([spec], shadow_looks(1000, 50, 3), exposure="shadow")[-1].verdicts[0]
    assert final.outcome is Outcome.FAIL
    assert final.estimate == pytest.approx(0.05)
    assert final.interval is not None and final.interval[0] > 0.02
    assert final.p_value is not None and final.p_value <= final.alpha
    assert final.sentence() == (
        f"shadow disagreement 5% (confidence {final.interval[0] * 100:.3g}% to "
        f"{final.interval[1] * 100:.3g}%, allowed 2%) over 150 disagreements in "
        "3,000 mirrored pairs: FAIL"
    )


def test_rare_disagreement_passes_after_min_samples() -> None:
    spec = gate("disagreement", max="2%", min_samples=2000)
    verdicts = judge([spec], shadow_looks(1000, 2, 4), exposure="shadow")
    assert [v.outcome for v in verdicts][:1] == [Outcome.INCONCLUSIVE]
    assert verdicts[-1].outcome is Outcome.PASS
    assert verdicts[-1].verdicts[0].interval[1] < 0.02


def test_disagreement_without_pairs_is_nodata() -> None:
    spec = gate("disagreement", max="2%")
    verdict = judge([spec], [{"baseline": {"requests": 10}}], exposure="shadow")[-1]
    assert verdict.outcome is Outcome.NODATA
    assert verdict.verdicts[0].sentence() == "shadow disagreement: no mirrored pairs yet: NODATA"


def test_disagreement_counts_that_go_down_are_ignored() -> None:
    traffic = Traffic()
    state = gates.start_stage(
        [gate("disagreement", max="5%")], 0.05, traffic.snapshot(), exposure="shadow"
    )
    traffic.mirror(1000, 10)
    state, _ = gates.observe(state, traffic.snapshot())
    restarted = Traffic(now=traffic.now).mirror(40, 39)
    state, verdict = gates.observe(state, restarted.snapshot())
    assert verdict.verdicts[0].counts["pairs"] == 1000
    assert verdict.verdicts[0].counts["disagreements"] == 10
