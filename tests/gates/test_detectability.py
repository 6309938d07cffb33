"""What a gate can detect, simulated through the gates' own kernels."""

from __future__ import annotations

import numpy as np

from gray.controller.gates.config import GateConfig
from gray.controller.gates.detectability import (
    GateTraffic,
    ShareJudge,
    detectability,
    missed_sentence,
)
from gray.controller.gates.families.share import ShareGate
from gray.controller.gates.increments import Increment
from gray.controller.plan.models import GateSpec
from gray.controller.types import VersionCounters


def config(alpha: float = 0.0125, **fields: object) -> GateConfig:
    return GateConfig.from_spec(GateSpec.model_validate(fields), alpha)


def test_the_share_judge_decides_exactly_as_the_share_gate() -> None:
    rng = np.random.default_rng(5)
    gate_config = config(metric="disagreement", max="5%", min_samples=300)
    runs = 6
    rates = np.linspace(0.0, 0.12, runs)
    judge = ShareJudge(gate_config, runs)
    gates = [ShareGate.start(gate_config, VersionCounters()) for _ in range(runs)]
    for _ in range(15):
        pairs = rng.poisson(40, runs) * (rng.random(runs) > 0.2)  # some looks bring none
        disagreements = rng.binomial(pairs, rates)
        judge.add(pairs, disagreements)
        for i in range(runs):
            seen = Increment(
                VersionCounters(), VersionCounters(), int(pairs[i]), int(disagreements[i])
            )
            gates[i] = gates[i].update(seen)
            outcome = gates[i].verdict().outcome.value
            assert (outcome == "fail") == bool(judge.fails()[i])
            assert (outcome == "pass") == bool(judge.passes()[i] and not judge.fails()[i])


def test_more_traffic_catches_smaller_regressions_and_the_same_input_gives_the_same_answer() -> (
    None
):
    gate = config(metric="error_rate", max_increase="10%")
    thin = GateTraffic(candidate=400, baseline=3600, looks=8, interval=60)
    thick = GateTraffic(candidate=4000, baseline=36000, looks=8, interval=60)
    first = detectability(gate, thin, 0.01)
    assert first == detectability(gate, thin, 0.01)  # seeded
    more = detectability(gate, thick, 0.01)
    assert first.smallest is not None and more.smallest is not None
    assert 1.1 < more.smallest < first.smallest
    assert more.power_at_double >= first.power_at_double
    assert more.median_seconds_at_double is not None
    assert more.median_seconds_at_double <= 600
    assert first.allowed == 1.1 and first.double == 2.0


def test_a_gate_that_saw_almost_nothing_says_so() -> None:
    gate = config(metric="error_rate", max_increase="10%")
    found = detectability(gate, GateTraffic(candidate=1, baseline=9, looks=5, interval=30), 0.01)
    assert found.smallest is None and not found.reaches_margin
    sentence = missed_sentence(found, "the 5 candidate requests it saw")
    assert sentence == (
        "error rate: even 64x would have been caught less than 80 % of the time with the 5 "
        "candidate requests it saw: too little to judge it"
    )


def test_latency_shift_and_disagreement_are_measured_in_their_own_units() -> None:
    traffic = GateTraffic(candidate=1500, baseline=1500, looks=20, interval=30)
    shift = detectability(config(metric="latency_distribution", tolerance="5%"), traffic, 0.0)
    assert shift.unit == "shift" and shift.double == 0.1
    assert shift.smallest is not None and 0.05 < shift.smallest < 0.1
    paired = GateTraffic(candidate=300, baseline=300, looks=20, interval=30, paired=True)
    share = detectability(config(metric="disagreement", max="5%"), paired, 0.01)
    assert share.unit == "rate" and share.passes_alike > 0.8 and share.reaches_margin
    assert share.smallest is not None and 0.05 < share.smallest < 0.1
