"""Judging a stage: which gates apply, the alpha split, combining outcomes, and the judge's
state surviving a crash (JSON round trip, fixed size)."""

from __future__ import annotations

import copy
import json
import math

import pytest

from gray.controller import gates
from gray.controller.gates import JudgeState, Outcome, StageVerdict, Verdict
from gray.controller.types import Snapshot

from .conftest import Traffic, gate

PLAN_GATES = [
    gate("error_rate", max_increase="10%"),
    gate("latency", slo="250ms", max_increase="20%"),
    gate("accuracy", max_decrease="1%", alpha=0.01),
    gate("latency_distribution", tolerance="5%"),
    gate("disagreement", max="3%"),
]


def alphas(state: JudgeState) -> dict[str, float]:
    return {g.config.key: g.config.alpha for g in state.gates}


def test_alpha_is_split_over_the_gates_that_apply() -> None:
    live = gates.start_stage(PLAN_GATES, 0.05, Snapshot(taken_at=0.0), exposure="live")
    # disagreement needs pairs: left out of a live stage; accuracy keeps its own alpha.
    assert alphas(live) == {
        "error_rate": pytest.approx(0.05 / 3),
        "latency<250ms": pytest.approx(0.05 / 3),
        "accuracy": 0.01,
        "latency_distribution": pytest.approx(0.05 / 3),
    }
    assert live.left_out == (
        ("disagreement", "a live stage without mirrored traffic has no pairs to compare"),
    )
    shadow = gates.start_stage(PLAN_GATES, 0.05, Snapshot(taken_at=0.0), exposure="shadow")
    assert alphas(shadow)["disagreement"] == pytest.approx(0.05 / 4)
    assert len(shadow.gates) == 5
    mirrored = gates.start_stage(
        PLAN_GATES, 0.05, Snapshot(taken_at=0.0), exposure="live", mirrored=True
    )
    assert "disagreement" in alphas(mirrored)


def test_disabled_gates_are_not_judged() -> None:
    specs = [
        gate("error_rate", max_increase="10%"),
        gate("bad_request_rate", max_increase="10%", enabled=False),
    ]
    state = gates.start_stage(specs, 0.05, Snapshot(taken_at=0.0), exposure="live")
    assert alphas(state) == {"error_rate": 0.05}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="exposure"):
        gates.start_stage(PLAN_GATES, 0.05, Snapshot(taken_at=0.0), exposure="canary")
    with pytest.raises(ValueError, match="alpha"):
        gates.start_stage(PLAN_GATES, 0.0, Snapshot(taken_at=0.0), exposure="live")


def verdict_with(outcome: Outcome, key: str = "error_rate") -> Verdict:
    return Verdict(
        key, outcome, None, None, None, None, None, 0.05, {}, metric="error_rate", note="x"
    )


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ((Outcome.PASS, Outcome.PASS), Outcome.PASS),
        ((Outcome.PASS, Outcome.INCONCLUSIVE), Outcome.INCONCLUSIVE),
        ((Outcome.INCONCLUSIVE, Outcome.NODATA), Outcome.NODATA),
        ((Outcome.PASS, Outcome.NODATA), Outcome.NODATA),
        ((Outcome.NODATA, Outcome.FAIL, Outcome.PASS), Outcome.FAIL),
        ((), Outcome.PASS),
    ],
)
def test_any_fail_fails_and_missing_data_never_passes(
    outcomes: tuple[Outcome, ...], expected: Outcome
) -> None:
    combined = StageVerdict.combine(tuple(verdict_with(o) for o in outcomes))
    assert combined.outcome is expected


def test_stage_sentence_leads_with_the_deciding_gates() -> None:
    combined = StageVerdict.combine(
        (verdict_with(Outcome.PASS, "a"), verdict_with(Outcome.FAIL, "b"))
    )
    assert combined.sentence() == "stage FAIL: error rate: x: FAIL; error rate: x: PASS"
    assert StageVerdict.combine(()).sentence() == "no gate applies to this stage: PASS"


def drive(state: JudgeState, traffic: Traffic, looks: int) -> tuple[JudgeState, StageVerdict]:
    verdict = gates.judge(state)
    for i in range(looks):
        traffic.add(
            "candidate",
            requests=500,
            errors=5 + i % 3,
            labelled=400,
            correct=360,
            slow={0.25: 20},
            buckets={0.1: 300, 0.25: 480, math.inf: 500},
        )
        traffic.add(
            "baseline",
            requests=4500,
            errors=45,
            labelled=3600,
            correct=3250,
            slow={0.25: 180},
            buckets={0.1: 2700, 0.25: 4320, math.inf: 4500},
        )
        traffic.mirror(100, 2)
        state, verdict = gates.observe(state, traffic.snapshot())
    return state, verdict


def test_judge_state_survives_a_json_round_trip_and_a_resume() -> None:
    traffic = Traffic()
    start = gates.start_stage(PLAN_GATES, 0.05, traffic.snapshot(), exposure="live", mirrored=True)
    state, _ = drive(start, traffic, 3)
    text = json.dumps(state.to_dict(), allow_nan=False)
    restored = JudgeState.from_dict(json.loads(text))
    assert restored == state
    # A controller that crashed here and resumed from the journal judges exactly alike.
    twin = copy.deepcopy(traffic)
    kept, kept_verdict = drive(state, traffic, 2)
    resumed, resumed_verdict = drive(restored, twin, 2)
    assert resumed_verdict == kept_verdict
    assert resumed.to_dict() == kept.to_dict()


def test_judge_state_does_not_grow_with_the_number_of_looks() -> None:
    traffic = Traffic()
    start = gates.start_stage(PLAN_GATES, 0.05, traffic.snapshot(), exposure="live")
    early, _ = drive(start, traffic, 2)
    late, _ = drive(early, traffic, 60)
    size_early = len(json.dumps(early.to_dict()))
    size_late = len(json.dumps(late.to_dict()))
    assert late.looks == 62
    assert size_late < size_early * 1.1


def test_verdicts_are_json_safe_and_round_trip() -> None:
    traffic = Traffic()
    start = gates.start_stage(PLAN_GATES, 0.05, traffic.snapshot(), exposure="live", mirrored=True)
    _, verdict = drive(start, traffic, 4)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    again = StageVerdict.from_dict(data)
    assert again == verdict
    assert data["sentence"] == verdict.sentence()
    for gate_verdict in again.verdicts:
        assert gate_verdict.sentence().endswith(": " + gate_verdict.outcome.value.upper())


def test_infinite_bounds_survive_json() -> None:
    unbounded = Verdict(
        "error_rate",
        Outcome.INCONCLUSIVE,
        None,
        (0.0, math.inf),
        1.1,
        1.0,
        1.0,
        0.05,
        {"candidate_events": 0},
        metric="error_rate",
    )
    data = json.loads(json.dumps(unbounded.to_dict(), allow_nan=False))
    assert data["interval"] == [0.0, "inf"]
    assert Verdict.from_dict(data) == unbounded
    assert "confidence not bounded yet" in unbounded.sentence()


def test_a_regression_fails_the_stage_with_the_failing_gate_first() -> None:
    traffic = Traffic()
    state = gates.start_stage(PLAN_GATES[:2], 0.05, traffic.snapshot(), exposure="live")
    for _ in range(3):
        traffic.add("candidate", requests=3000, errors=150, slow={0.25: 30})
        traffic.add("baseline", requests=3000, errors=30, slow={0.25: 30})
        state, verdict = gates.observe(state, traffic.snapshot())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.sentence().startswith("stage FAIL: error rate 5x baseline")
