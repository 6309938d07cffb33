"""Rate gates case by case, through the public API the stage loop calls."""

from __future__ import annotations

import json
import math

import pytest

from gray.controller import gates
from gray.controller.gates import Outcome, StageVerdict
from gray.controller.types import Snapshot

from ..conftest import Traffic, gate


def judge_looks(
    specs: list, traffic: Traffic, looks: list[dict], *, exposure: str = "live", alpha=0.05
) -> list[StageVerdict]:
    """Start a stage at the traffic's current counters, then one look per dict of increments.

    Each dict maps "candidate"/"baseline" (or shadow sides) to counter increments.
    """
    state = gates.start_stage(specs, alpha, traffic.snapshot(), exposure=exposure)
    verdicts = []
    for look in looks:
        for side, counts in look.items():
            traffic.add(side, **counts)
        state, verdict = gates.observe(state, traffic.snapshot())
        verdicts.append(verdict)
    return verdicts


def same_rate_looks(n: int, looks: int, *, rate: float, share: float = 0.5) -> list[dict]:
    candidate = round(n * share)
    baseline = n - candidate
    return [
        {
            "candidate": {"requests": candidate, "errors": round(candidate * rate)},
            "baseline": {"requests": baseline, "errors": round(baseline * rate)},
        }
        for _ in range(looks)
    ]


def only(verdict: StageVerdict) -> gates.Verdict:
    assert len(verdict.verdicts) == 1
    return verdict.verdicts[0]


def test_no_candidate_traffic_is_nodata_never_a_pass(traffic: Traffic) -> None:
    looks = [{"baseline": {"requests": 5000, "errors": 0}}] * 3
    verdict = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)[-1]
    assert verdict.outcome is Outcome.NODATA
    assert only(verdict).sentence() == "error rate: no candidate requests yet: NODATA"


def test_a_clear_regression_fails_with_its_numbers(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 1000, "errors": 30},
            "baseline": {"requests": 1000, "errors": 10},
        }
    ] * 4
    verdicts = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)
    final = only(verdicts[-1])
    assert final.outcome is Outcome.FAIL
    assert final.estimate == pytest.approx(3.0)
    assert final.interval is not None and final.interval[0] >= 1.1
    assert final.allowed == pytest.approx(1.1)
    assert final.p_value is not None and final.p_value <= final.alpha
    assert final.counts["candidate_events"] == 120
    assert final.counts["candidate_requests"] == 4000
    sentence = final.sentence()
    assert sentence.startswith("error rate 3x baseline (3% vs 1%; confidence ")
    assert (
        "allowed 1.1x) over 120 candidate errors in 4,000 requests "
        "(assumed independent: no counts per routing-key group): FAIL"
    ) in sentence
    assert final.method == "per_request"


def test_equal_rates_pass_once_the_interval_is_inside_the_margin(traffic: Traffic) -> None:
    looks = same_rate_looks(20_000, 6, rate=0.02)
    verdicts = judge_looks([gate("error_rate", max_increase="20%")], traffic, looks)
    outcomes = [v.outcome for v in verdicts]
    assert outcomes[0] is Outcome.INCONCLUSIVE
    assert outcomes[-1] is Outcome.PASS
    final = only(verdicts[-1])
    assert final.interval is not None and final.interval[1] <= 1.2
    assert final.interval[0] < 1.0 < final.interval[1]


def test_no_pass_before_min_samples(traffic: Traffic) -> None:
    specs = [gate("error_rate", max_increase="50%", min_samples=30_000)]
    looks = same_rate_looks(20_000, 4, rate=0.05)
    verdicts = judge_looks(specs, traffic, looks)
    assert [v.outcome for v in verdicts] == [
        Outcome.INCONCLUSIVE,
        Outcome.INCONCLUSIVE,
        Outcome.PASS,  # 30,000 candidate requests reached at the third look
        Outcome.PASS,
    ]
    assert "(30,000 needed to pass)" in only(verdicts[1]).sentence()


def test_an_early_look_with_little_data_is_inconclusive(traffic: Traffic) -> None:
    looks = same_rate_looks(100, 1, rate=0.02)
    verdict = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)[0]
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "(200 needed to pass)" in only(verdict).sentence()


def test_zero_events_pass_only_with_an_absolute_allowance(traffic: Traffic) -> None:
    looks = same_rate_looks(1_000, 6, rate=0.0)
    relative = judge_looks([gate("error_rate", max_increase="10%")], Traffic(), looks)
    assert {v.outcome for v in relative} == {Outcome.INCONCLUSIVE}
    absolute = judge_looks(
        [gate("error_rate", max_increase="10%", max_increase_abs="0.5%")], traffic, looks
    )
    assert absolute[0].outcome is Outcome.INCONCLUSIVE
    assert absolute[-1].outcome is Outcome.PASS
    final = only(absolute[-1])
    assert final.extra["difference_high"] is not None and final.extra["difference_high"] < 0.005
    assert "allowed 1.1x or +0.50 points" in final.sentence()


def test_huge_counts_do_not_overflow(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 10**12, "errors": 10**10},
            "baseline": {"requests": 10**12, "errors": 10**10},
        },
        {
            "candidate": {"requests": 10**12, "errors": 3 * 10**10},
            "baseline": {"requests": 10**12, "errors": 10**10},
        },
    ]
    verdicts = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)
    assert verdicts[0].outcome is Outcome.PASS
    assert verdicts[1].outcome is Outcome.FAIL
    final = only(verdicts[1])
    assert final.estimate == pytest.approx(2.0)
    assert final.e_value is not None and final.e_value >= 0
    assert final.interval is not None and all(not math.isnan(x) for x in final.interval)
    json.dumps(verdicts[1].to_dict(), allow_nan=False)


def test_share_changing_mid_stage_is_judged_per_look(traffic: Traffic) -> None:
    """Both versions err at the same rate, but the error rate and the candidate's share move
    together: pooled over the stage the candidate looks 4.8x worse. Per look it is not."""
    looks = [
        {  # a bad hour with the candidate at 90 %
            "candidate": {"requests": 90_000, "errors": 4_500},
            "baseline": {"requests": 10_000, "errors": 500},
        },
        {  # a quiet hour with the candidate at 10 %
            "candidate": {"requests": 10_000, "errors": 50},
            "baseline": {"requests": 90_000, "errors": 450},
        },
    ] * 2
    verdicts = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)
    final = only(verdicts[-1])
    pooled = (9_100 / 200_000) / (1_900 / 200_000)
    assert final.estimate == pytest.approx(pooled)
    assert final.outcome is not Outcome.FAIL
    assert final.interval is not None and final.interval[0] < 1.0 < final.interval[1]


def test_a_regression_is_found_across_a_share_change(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 500, "errors": 10},
            "baseline": {"requests": 9500, "errors": 95},
        },
        {
            "candidate": {"requests": 5000, "errors": 100},
            "baseline": {"requests": 5000, "errors": 50},
        },
    ]
    verdicts = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)
    assert verdicts[-1].outcome is Outcome.FAIL
    assert only(verdicts[-1]).interval[0] > 1.1


def test_counters_that_go_down_count_as_no_traffic(traffic: Traffic) -> None:
    state = gates.start_stage(
        [gate("error_rate", max_increase="10%")], 0.05, traffic.snapshot(), exposure="live"
    )
    traffic.add("candidate", requests=5000, errors=50).add("baseline", requests=5000, errors=50)
    state, _ = gates.observe(state, traffic.snapshot())
    # The endpoint restarted: every counter starts again from a small number.
    restarted = Traffic(now=traffic.now)
    restarted.add("candidate", requests=300, errors=90).add("baseline", requests=300, errors=3)
    state, verdict = gates.observe(state, restarted.snapshot())
    counts = only(verdict).counts
    assert counts["candidate_requests"] == 5000 and counts["candidate_events"] == 50
    # The next look counts from the restarted counters, not from zero.
    restarted.add("candidate", requests=1000, errors=10).add("baseline", requests=1000, errors=10)
    state, verdict = gates.observe(state, restarted.snapshot())
    counts = only(verdict).counts
    assert counts["candidate_requests"] == 6000 and counts["candidate_events"] == 60
    assert min(counts.values()) >= 0


def test_slow_requests_are_counted_at_the_gates_edge(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 4000, "slow": {0.25: 400, 0.5: 10}},
            "baseline": {"requests": 4000, "slow": {0.25: 200, 0.5: 10}},
        }
    ] * 3
    verdict = judge_looks([gate("latency", slo="250ms", max_increase="20%")], traffic, looks)[-1]
    final = only(verdict)
    assert final.gate == "latency<250ms"
    assert final.outcome is Outcome.FAIL
    assert final.counts["candidate_events"] == 1200
    assert final.sentence().startswith("slow-request rate (>250ms) 2x baseline")


def test_slow_requests_read_off_the_histogram_when_the_edge_is_a_bucket(traffic: Traffic) -> None:
    buckets_c = {0.1: 2000, 0.25: 3600, math.inf: 4000}  # 400 slower than 250ms
    buckets_b = {0.1: 2000, 0.25: 3800, math.inf: 4000}  # 200 slower
    looks = [
        {
            "candidate": {"requests": 4000, "buckets": buckets_c},
            "baseline": {"requests": 4000, "buckets": buckets_b},
        }
    ] * 3
    verdict = judge_looks([gate("latency", slo="250ms", max_increase="20%")], traffic, looks)[-1]
    assert only(verdict).counts["candidate_events"] == 1200
    assert verdict.outcome is Outcome.FAIL


def test_a_latency_edge_nobody_counts_is_nodata_with_the_reason(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 4000, "slow": {0.5: 10}},
            "baseline": {"requests": 4000, "slow": {0.5: 10}},
        }
    ] * 2
    verdict = judge_looks([gate("latency", slo="250ms", max_increase="20%")], traffic, looks)[-1]
    assert verdict.outcome is Outcome.NODATA
    assert only(verdict).sentence() == (
        "slow-request rate (>250ms): the metrics source does not count requests slower "
        "than 250ms: NODATA"
    )


def test_bad_requests_are_their_own_rate(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 3000, "bad_requests": 300, "errors": 0},
            "baseline": {"requests": 3000, "bad_requests": 30, "errors": 0},
        }
    ] * 2
    specs = [gate("bad_request_rate", max_increase="10%"), gate("error_rate", max_increase="10%")]
    verdict = judge_looks(specs, traffic, looks)[-1]
    by_gate = {v.gate: v for v in verdict.verdicts}
    assert by_gate["bad_request_rate"].outcome is Outcome.FAIL
    assert by_gate["error_rate"].outcome is Outcome.INCONCLUSIVE
    assert verdict.outcome is Outcome.FAIL


def test_accuracy_drop_beyond_the_allowance_fails_as_a_difference(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 5000, "labelled": 5000, "correct": 4300},  # 86 %
            "baseline": {"requests": 5000, "labelled": 5000, "correct": 4500},  # 90 %
        }
    ] * 3
    verdict = judge_looks([gate("accuracy", max_decrease="1%")], traffic, looks)[-1]
    final = only(verdict)
    assert final.outcome is Outcome.FAIL
    assert final.unit == "difference"
    assert final.estimate == pytest.approx(-0.04)
    assert final.allowed == pytest.approx(-0.01)
    assert final.interval is not None and final.interval[1] < -0.01
    assert final.counts["candidate_labelled"] == 15000
    assert final.sentence().startswith("accuracy -4.00 points vs baseline (86% vs 90%; confidence")


def test_equal_accuracy_passes_within_the_allowance(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 20000, "labelled": 20000, "correct": 18000},
            "baseline": {"requests": 20000, "labelled": 20000, "correct": 18000},
        }
    ] * 3
    verdict = judge_looks([gate("accuracy", max_decrease="2%")], traffic, looks)[-1]
    final = only(verdict)
    assert final.outcome is Outcome.PASS
    assert final.interval is not None and final.interval[0] > -0.02


def test_no_labels_is_nodata(traffic: Traffic) -> None:
    looks = same_rate_looks(5000, 2, rate=0.01)
    verdict = judge_looks([gate("wrong_prediction_rate", max_increase="10%")], traffic, looks)[-1]
    assert verdict.outcome is Outcome.NODATA
    assert "no labelled candidate predictions yet" in only(verdict).sentence()


def test_a_full_weight_stage_compares_with_the_baseline_before_it(traffic: Traffic) -> None:
    traffic.add("baseline", requests=200_000, errors=2_000)  # earlier stages: 1 %
    looks = [{"candidate": {"requests": 10_000, "errors": 100}}] * 3
    specs = [gate("error_rate", max_increase="10%", max_increase_abs="0.5%")]
    verdict = judge_looks(specs, traffic, looks)[-1]
    final = only(verdict)
    assert final.outcome is Outcome.PASS
    assert "compared with the baseline's 200,000 requests before it" in final.sentence()
    worse = Traffic()
    worse.add("baseline", requests=200_000, errors=2_000)
    bad_looks = [{"candidate": {"requests": 10_000, "errors": 400}}] * 3
    assert judge_looks(specs, worse, bad_looks)[-1].outcome is Outcome.FAIL


def test_shadow_stage_compares_the_mirrored_answers(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 0},
            "baseline": {"requests": 10_000, "errors": 10},
            "shadow_candidate": {"requests": 5000, "errors": 250},
            "shadow_baseline": {"requests": 5000, "errors": 50},
        }
    ] * 2
    specs = [gate("error_rate", max_increase="10%")]
    verdict = judge_looks(specs, traffic, looks, exposure="shadow")[-1]
    final = only(verdict)
    assert final.outcome is Outcome.FAIL
    assert final.counts["candidate_requests"] == 10_000
    assert final.counts["baseline_requests"] == 10_000


def test_the_e_value_behind_a_fail_is_at_least_one_over_alpha(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 2000, "errors": 60},
            "baseline": {"requests": 2000, "errors": 20},
        }
    ] * 5
    verdicts = judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)
    for verdict in verdicts:
        v = only(verdict)
        assert v.p_value is not None and v.e_value is not None
        assert (v.outcome is Outcome.FAIL) == (v.p_value <= v.alpha)


def test_snapshot_without_shadow_data_is_fine_for_live_stages() -> None:
    state = gates.start_stage(
        [gate("error_rate", max_increase="10%")], 0.05, Snapshot(taken_at=0.0), exposure="live"
    )
    state, verdict = gates.observe(state, Snapshot(taken_at=30.0))
    assert verdict.outcome is Outcome.NODATA
