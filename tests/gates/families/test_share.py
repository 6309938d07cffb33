"""The share family: the shadow-disagreement gate on mirrored pairs, case by case."""

from __future__ import annotations

import pytest

from gray.controller import gates
from gray.controller.gates import Outcome

from ..conftest import Traffic, gate, judge


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
