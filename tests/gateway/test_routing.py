"""Hash buckets, stickiness, monotone ramps, audience rules and mirroring (pure functions)."""

from __future__ import annotations

import ipaddress
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gray.controller.types import Audience, RouteSpec
from gray.gateway.routing import (
    BUCKETS,
    AudienceRule,
    CompiledRoute,
    address_in,
    bucket_of,
    parse_address,
    parse_networks,
)

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def decide(route: RouteSpec, key: str, address: str = "127.0.0.1", **headers: str) -> str:
    compiled = CompiledRoute.compile(route)
    return compiled.decide(key, parse_address(address), headers).role


def test_buckets_are_pinned_so_users_never_reshuffle() -> None:
    # A change of hash function would silently move every user to another version.
    assert [bucket_of(k) for k in ("alice", "bob", "user-42")] == [4729, 9842, 598]
    assert all(0 <= bucket_of(f"k{i}") < BUCKETS for i in range(1000))


@pytest.mark.parametrize("weight", [0.01, 0.05, 0.2, 0.5, 0.9])
def test_candidate_share_matches_weight_within_statistical_bounds(weight: float) -> None:
    route = RouteSpec(baseline="1", candidate="2", weight=weight)
    keys = 20_000
    hits = sum(decide(route, f"user-{i}") == "candidate" for i in range(keys))
    sd = math.sqrt(keys * weight * (1 - weight))
    assert abs(hits - keys * weight) < 5 * sd, (hits, keys * weight, sd)


def test_weight_edges_are_all_or_nothing() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    none = RouteSpec(baseline="1", candidate="2", weight=0.0)
    full = RouteSpec(baseline="1", candidate="2", weight=1.0)
    assert {decide(none, k) for k in keys} == {"baseline"}
    assert {decide(full, k) for k in keys} == {"candidate"}


def test_a_key_gets_the_same_version_every_time() -> None:
    route = RouteSpec(baseline="1", candidate="2", weight=0.3)
    for i in range(500):
        first = decide(route, f"user-{i}")
        assert all(decide(route, f"user-{i}") == first for _ in range(5))


@given(
    key=st.text(max_size=40),
    low=st.floats(min_value=0.0, max_value=1.0),
    high=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_key_that_saw_the_candidate_keeps_seeing_it_as_the_weight_grows(
    key: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    at_low = decide(RouteSpec(baseline="1", candidate="2", weight=low), key)
    at_high = decide(RouteSpec(baseline="1", candidate="2", weight=high), key)
    if at_low == "candidate":
        assert at_high == "candidate"


def test_audience_cidr_limits_who_may_reach_the_candidate() -> None:
    route = RouteSpec(
        baseline="1", candidate="2", weight=1.0, audience=Audience(cidr=("10.0.0.0/8",))
    )
    assert decide(route, "k", "10.1.2.3") == "candidate"
    assert decide(route, "k", "192.168.1.1") == "baseline"
    assert decide(route, "k", "::ffff:10.0.0.7") == "candidate"  # IPv4-mapped IPv6
    assert decide(route, "k", "not-an-address") == "baseline"


def test_audience_headers_equal_or_in_list_and_all_rules_must_match() -> None:
    audience = Audience.from_dict(
        {"cidr": ["127.0.0.0/8"], "headers": {"X-Team": "ml", "X-Region": ["eu", "us"]}}
    )
    route = RouteSpec(baseline="1", candidate="2", weight=1.0, audience=audience)
    assert decide(route, "k", **{"x-team": "ml", "x-region": "eu"}) == "candidate"
    assert decide(route, "k", **{"x-team": "ml", "x-region": "us"}) == "candidate"
    assert decide(route, "k", **{"x-team": "ml", "x-region": "apac"}) == "baseline"
    assert decide(route, "k", **{"x-team": "ops", "x-region": "eu"}) == "baseline"
    assert decide(route, "k", **{"x-team": "ml"}) == "baseline"
    assert decide(route, "k", "10.0.0.1", **{"x-team": "ml", "x-region": "eu"}) == "baseline"


def test_mirror_takes_a_share_of_baseline_requests_inside_the_audience() -> None:
    rng = random.Random(7)
    route = CompiledRoute.compile(
        RouteSpec(
            baseline="1",
            candidate="2",
            weight=0.1,
            mirror=0.5,
            audience=Audience(cidr=("127.0.0.0/8",)),
        )
    )
    decisions = [route.decide(f"u{i}", LOOPBACK, {}, rng.random) for i in range(10_000)]
    candidate = [d for d in decisions if d.role == "candidate"]
    mirrored = [d for d in decisions if d.mirror_to == "2"]
    assert all(d.role == "baseline" and d.version == "1" for d in mirrored)
    assert not any(d.mirror_to for d in candidate)
    baseline_count = len(decisions) - len(candidate)
    assert abs(len(mirrored) / baseline_count - 0.5) < 0.03
    outside = [
        route.decide(f"u{i}", parse_address("192.0.2.1"), {}, rng.random) for i in range(1000)
    ]
    assert all(d.role == "baseline" and d.mirror_to is None for d in outside)


def test_a_route_without_candidate_traffic_never_hashes_or_mirrors() -> None:
    route = CompiledRoute.compile(RouteSpec(baseline="1", candidate="2", weight=0.0, mirror=0.0))
    assert not route.sends_to_candidate
    assert route.decide("k", None, {}).version == "1"
    lone = CompiledRoute.compile(RouteSpec(baseline="7"))
    assert lone.decide("k", None, {}).version == "7"


def test_networks_and_addresses() -> None:
    networks = parse_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert address_in(ipaddress.ip_address("2001:db8::1"), networks)
    assert not address_in(ipaddress.ip_address("2001:db9::1"), networks)
    assert not address_in(None, networks)
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(["10.0.0.300/8"])
    assert AudienceRule.compile(Audience()).matches(None, {})
