"""The error-rate verdict says how many of the candidate's failures the baseline shares."""

from __future__ import annotations

from gray.controller.types import VersionCounters

from ..conftest import Traffic, gate
from .test_count import judge_looks, only


def test_the_sentence_counts_failures_the_baseline_also_fails(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {
                "requests": 1000,
                "errors": 40,
                "replayed_failures": 30,
                "baseline_also_failed": 28,
            },
            "baseline": {"requests": 1000, "errors": 1},
        }
    ] * 2
    verdict = only(judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)[-1])
    assert verdict.counts["replayed_failures"] == 60
    assert verdict.counts["baseline_also_failed"] == 56
    assert "the baseline also failed 56 of 60 candidate failures replayed on it" in (
        verdict.sentence()
    )


def test_without_replays_the_sentence_is_unchanged(traffic: Traffic) -> None:
    looks = [{"candidate": {"requests": 500, "errors": 0}, "baseline": {"requests": 500}}]
    verdict = only(judge_looks([gate("error_rate", max_increase="10%")], traffic, looks)[-1])
    assert "replayed" not in verdict.sentence()
    assert "replayed_failures" not in verdict.counts


def test_other_gates_leave_replays_out(traffic: Traffic) -> None:
    looks = [
        {
            "candidate": {"requests": 500, "bad_requests": 5, "replayed_failures": 3},
            "baseline": {"requests": 500, "bad_requests": 5},
        }
    ]
    verdict = only(judge_looks([gate("bad_request_rate", max_increase="10%")], traffic, looks)[-1])
    assert "replayed" not in verdict.sentence()


def test_version_counters_carry_replays_through_json_and_differences() -> None:
    later = VersionCounters(requests=10, errors=4, replayed_failures=4, baseline_also_failed=3)
    earlier = VersionCounters(requests=5, errors=1, replayed_failures=1, baseline_also_failed=1)
    assert VersionCounters.from_dict(later.to_dict()) == later
    assert later.minus(earlier).replayed_failures == 3
    assert later.minus(earlier).baseline_also_failed == 2
    assert VersionCounters.from_dict({"requests": 1}).replayed_failures == 0
