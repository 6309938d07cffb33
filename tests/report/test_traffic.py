"""A look's traffic per version, as the journal keeps it for the report."""

from __future__ import annotations

import json

import pytest

from gray.controller.traffic import look_traffic, percentile
from gray.controller.types import ShadowCounters, Snapshot, VersionCounters

INF = float("inf")


def test_a_percentile_is_interpolated_inside_its_bucket() -> None:
    # 100 requests: 50 at or below 10 ms, 90 at or below 100 ms, all at or below 1 s.
    buckets = ((0.01, 50), (0.1, 90), (1.0, 100), (INF, 100))
    assert percentile(buckets, 0.5) == pytest.approx(0.01)
    assert percentile(buckets, 0.7) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert percentile(buckets, 0.99) == pytest.approx(0.1 + 0.9 * 9 / 10)


def test_a_percentile_past_the_last_finite_edge_reads_as_that_edge() -> None:
    assert percentile(((0.25, 1), (INF, 10)), 0.99) == 0.25
    assert percentile((), 0.5) is None
    assert percentile(((0.25, 0), (INF, 0)), 0.5) is None


def counters(
    requests: int, errors: int = 0, bad: int = 0, fast: int | None = None
) -> VersionCounters:
    fast = requests if fast is None else fast
    return VersionCounters(
        requests=requests,
        errors=errors,
        bad_requests=bad,
        latency_buckets=((0.1, fast), (INF, requests)),
    )


def test_a_look_keeps_what_each_version_answered_since_the_previous_look() -> None:
    before = Snapshot(
        taken_at=0.0,
        baseline=counters(1000, 10, 2),
        candidate=counters(100, 1, 0),
        shadow=ShadowCounters(pairs=40, disagreements=2, candidate=counters(40)),
    )
    after = Snapshot(
        taken_at=30.0,
        baseline=counters(1900, 19, 3),
        candidate=counters(200, 5, 1, fast=150),
        shadow=ShadowCounters(pairs=90, disagreements=7, candidate=counters(90)),
    )
    traffic = look_traffic(before, after)
    assert traffic["baseline"][:3] == [900, 9, 1]
    assert traffic["candidate"][:3] == [100, 4, 1]
    # Half the candidate's new requests were over 100 ms: its median sits at the edge.
    assert traffic["candidate"][3] == pytest.approx(0.1)
    assert traffic["mirrored"][0] == 50
    assert traffic["pairs"] == [50, 5]
    assert len(json.dumps(traffic)) < 200  # journaled with every look


def test_a_version_with_no_new_request_is_left_out() -> None:
    same = Snapshot(taken_at=0.0, baseline=counters(10))
    assert look_traffic(same, Snapshot(taken_at=1.0, baseline=counters(10))) == {}
    # A counter that went down (the endpoint restarted) counts as nothing, as for the gates.
    assert look_traffic(same, Snapshot(taken_at=1.0, baseline=counters(3))) == {}
