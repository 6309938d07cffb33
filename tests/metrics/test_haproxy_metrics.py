"""`metrics: {type: haproxy}`: per-version counters from a real HAProxy's `show stat`, in
front of two real model servers; a restarted HAProxy never makes them go backwards; what
HAProxy cannot count is refused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from gray.controller.errors import ConfigError, MetricsError
from gray.controller.metrics.haproxy import HaproxyMetrics
from gray.controller.routers.haproxy import HaproxyRouter
from gray.controller.types import Lease, Pair, RouteSpec, Snapshot, VersionCounters
from gray.gateway.testing import free_port
from tests.haproxy_server import ModelsBehindHaproxy, start_haproxy

BAD_BODY = {"dataframe_split": {"columns": ["nonsense"], "data": [["not a number"]]}}


@pytest.fixture
def models(models_behind_haproxy: ModelsBehindHaproxy) -> ModelsBehindHaproxy:
    models_behind_haproxy.proxy.reset()
    return models_behind_haproxy


def pair_of(models: ModelsBehindHaproxy) -> Pair:
    return Pair(models.versions["baseline"], models.versions["candidate"])


def source_for(models: ModelsBehindHaproxy) -> HaproxyMetrics:
    proxy = models.proxy
    return HaproxyMetrics(proxy.runtime_tcp, proxy.backend, lease_map=proxy.lease_map)


def route_half(models: ModelsBehindHaproxy, lease: Lease) -> None:
    proxy, pair = models.proxy, pair_of(models)
    router = HaproxyRouter(
        proxy.runtime_unix, proxy.backend, proxy.roles, lease_map=proxy.lease_map
    )
    router.apply(RouteSpec(pair.baseline, pair.candidate, weight=0.5), lease, ttl=None)


def counted(later: Snapshot, earlier: Snapshot) -> tuple[VersionCounters, VersionCounters]:
    grown = later.minus(earlier)
    return grown.baseline, grown.candidate


@pytest.mark.slow
def test_each_version_counts_what_it_answered(models: ModelsBehindHaproxy) -> None:
    pair, source = pair_of(models), source_for(models)
    route_half(models, Lease("m1", 1))
    before = source.snapshot(pair)
    answered = Counter(models.send(f"u{n}" for n in range(60)).values())
    bad = Counter(models.send((f"b{n}" for n in range(10)), body=BAD_BODY).values())
    assert set(bad) == {"400"}
    baseline, candidate = counted(source.snapshot(pair), before)
    assert answered[pair.baseline] > 0 and answered[pair.candidate] > 0
    assert baseline.requests + candidate.requests == 70
    assert baseline.requests - baseline.bad_requests == answered[pair.baseline]
    assert candidate.requests - candidate.bad_requests == answered[pair.candidate]
    assert baseline.bad_requests + candidate.bad_requests == 10
    assert baseline.errors == candidate.errors == 0
    assert baseline.latency_buckets == () and baseline.slow == ()  # HAProxy has averages only


@pytest.mark.slow
def test_a_restarted_haproxy_never_takes_counts_back(models: ModelsBehindHaproxy) -> None:
    pair, source = pair_of(models), source_for(models)
    route_half(models, Lease("m2", 1))
    models.send(f"u{n}" for n in range(30))
    before = source.snapshot(pair)
    assert before.baseline.requests + before.candidate.requests >= 30

    models.proxy.restart()  # counters at zero, the router's record gone, config weights back
    after_restart = source.snapshot(pair)
    assert counted(after_restart, before) == (VersionCounters(), VersionCounters())

    models.send(f"v{n}" for n in range(20))  # all to the baseline: its config weight
    baseline, candidate = counted(source.snapshot(pair), before)
    assert (baseline.requests, candidate.requests) == (20, 0)


def test_a_candidate_that_never_answers_counts_its_failures(tmp_path: Path) -> None:
    """A server that refuses connections gets no HTTP answer to count: HAProxy answers 503
    itself and counts a connection error on the server (`econ`), not a 5xx."""
    closed = {"baseline": f"127.0.0.1:{free_port()}", "candidate": f"127.0.0.1:{free_port()}"}
    with start_haproxy(tmp_path, closed) as proxy:
        router = HaproxyRouter(
            proxy.runtime_unix, proxy.backend, proxy.roles, lease_map=proxy.lease_map
        )
        router.apply(RouteSpec("1", "2", weight=1.0), Lease("m3", 1), ttl=None)
        source = HaproxyMetrics(proxy.runtime_unix, proxy.backend, lease_map=proxy.lease_map)
        before = source.snapshot(Pair("1", "2"))
        with httpx.Client(base_url=proxy.url) as client:
            statuses = [
                client.get("/", headers={"X-Routing-Key": f"u{n}"}).status_code for n in range(1)
            ]
        assert statuses == [503]
        baseline, candidate = counted(source.snapshot(Pair("1", "2")), before)
    assert (candidate.requests, candidate.errors) == (1, 1)
    assert baseline.requests == 0


def test_latency_edges_are_refused_with_the_gates_it_feeds() -> None:
    with pytest.raises(ConfigError, match=r"slower than 250ms.*error_rate and bad_request_rate"):
        HaproxyMetrics("unix:///nowhere.sock", "models", slo_edges=(0.25,))


def test_an_unreachable_haproxy_is_a_metrics_error(tmp_path: Path) -> None:
    source = HaproxyMetrics(f"unix://{tmp_path}/absent.sock", "models")
    source.api._sleep = lambda _: None  # type: ignore[attr-defined]
    with pytest.raises(MetricsError, match="cannot read HAProxy's counters"):
        source.snapshot(Pair("1", "2"))
