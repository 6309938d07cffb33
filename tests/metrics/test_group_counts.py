"""Counters per hash group of the routing key: what they subtract, add and store."""

from __future__ import annotations

import json

import pytest

from gray.controller.types import ROUTING_GROUPS, GroupCounts, Snapshot, VersionCounters
from gray.gateway.routing import BUCKETS, bucket_of, group_of


def counts(base: int, slow: float = 0.25) -> GroupCounts:
    series = tuple(base + g for g in range(ROUTING_GROUPS))
    return GroupCounts(
        requests=series, errors=tuple(g % 3 for g in range(ROUTING_GROUPS)), slow=((slow, series),)
    )


def test_a_group_is_a_fixed_set_of_whole_buckets_spread_over_the_range() -> None:
    assert all(group_of(f"user-{i}") == bucket_of(f"user-{i}") % ROUTING_GROUPS for i in range(50))
    # Any candidate weight owns the lowest buckets: every group gets a near-equal share.
    for weight in (0.01, 0.05, 0.5):
        owned = round(weight * BUCKETS)
        per_group = [len(range(g, owned, ROUTING_GROUPS)) for g in range(ROUTING_GROUPS)]
        assert max(per_group) - min(per_group) <= 1


def test_minus_plus_and_a_stored_reading() -> None:
    later, earlier = counts(10), counts(1)
    grown = later.minus(earlier)
    assert grown.requests == (9,) * ROUTING_GROUPS and not any(grown.errors)
    assert grown.slow_over(0.25) == (9,) * ROUTING_GROUPS and grown.slow_over(0.1) is None
    assert earlier.plus(grown) == later
    # An edge only one reading counts is unknown in the sum.
    assert counts(1).plus(counts(1, slow=0.5)).slow == ()
    stored = json.loads(json.dumps(VersionCounters(requests=3, groups=later).to_dict()))
    assert "labelled" not in stored["groups"]  # series of zeros are left out
    assert VersionCounters.from_dict(stored).groups == later


def test_counters_without_groups_stay_without_them() -> None:
    old = {"requests": 5, "errors": 1}  # written before groups were counted
    assert VersionCounters.from_dict(old).groups is None
    assert "groups" not in VersionCounters.from_dict(old).to_dict()
    grouped = VersionCounters(requests=5, groups=counts(1))
    assert grouped.minus(VersionCounters()).groups is None
    assert VersionCounters().minus(grouped).groups is None
    snapshot = Snapshot(taken_at=1.0, candidate=grouped)
    assert Snapshot.from_dict(snapshot.to_dict()) == snapshot


def test_a_reading_with_another_number_of_groups_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"groups\.errors: 3 values, expected one per group"):
        GroupCounts.from_dict({"errors": [0, 1, 2]})
