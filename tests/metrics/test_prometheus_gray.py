"""The Prometheus source against a real Prometheus scraping two real gateway replicas.

The reference is what the replicas themselves say (`/admin/stats`, read by the gateway
source): summed over replicas, carried across a replica's restart, and kept after a
replica disappears, the Prometheus source must read exactly the same counters.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gray.controller.errors import MetricsError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.metrics.prometheus import PrometheusMetrics, PrometheusMetricsSpec
from gray.controller.metrics.prometheus.promql import PrometheusClient
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.types import GroupCounts, Lease, Pair, RouteSpec, Snapshot, VersionCounters
from gray.gateway.testing import RunningGateway, start_gateway, wait_for_ping
from tests.prometheus_server import RunningPrometheus

pytestmark = pytest.mark.slow

JOB = "gray-gateway"
SLO_EDGES = (0.05,)  # counted by the gateways; 0.25 is read off the histogram
PLAN_EDGES = (0.05, 0.25)
# Prometheus scrapes every second; with the suite on two workers a scrape and the labels
# posted after each answer can lag, so a look waits up to this long for the exact counts.
SETTLE_SECONDS = 20.0


@dataclass
class Fleet:
    """Two gateway replicas of the demo model, half of their traffic on a failing
    candidate and half of the rest mirrored to it, scraped by the session's Prometheus."""

    registry_uri: str
    pair: Pair
    root: Path
    prometheus: RunningPrometheus
    replicas: list[RunningGateway] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def start_replica(self, index: int, port: int | None = None) -> RunningGateway:
        return start_gateway(
            self.registry_uri,
            "fraud",
            self.root / f"gw-{index}",
            slo_edges=SLO_EDGES,
            port=port,
            wait_ready=False,
        )

    def restart(self, index: int) -> None:
        """Stop replica `index` and start it on the same port and state directory: its
        route comes back, its counters start from zero."""
        old = self.replicas[index]
        old.stop()
        self.replicas[index] = self.start_replica(index, old.port)
        wait_for_ping(self.replicas[index])

    def send(self, replica: RunningGateway, count: int, bad: int = 0) -> None:
        """`count` predictions (every answered one labelled afterwards) and `bad` unusable
        requests."""
        feedback = []
        with httpx.Client(timeout=10.0) as client:
            for number in range(count):
                row = number % len(self.rows)
                body = {"dataframe_split": {"columns": self.columns, "data": [self.rows[row]]}}
                headers = {"X-User-Id": f"user-{number}"}
                response = client.post(f"{replica.url}/invocations", json=body, headers=headers)
                request_id = response.headers.get("X-Request-Id")
                if response.status_code == 200 and request_id:
                    feedback.append({"request_id": request_id, "label": [self.labels[row]]})
            for number in range(bad):
                client.post(
                    f"{replica.url}/invocations",
                    json={"dataframe_split": {"columns": ["nope"], "data": [[1]]}},
                    headers={"X-User-Id": f"user-{number}"},
                )
            if feedback:
                answer = client.post(f"{replica.url}/feedback", json={"labels": feedback})
                assert answer.status_code == 200, answer.text

    def stats(self, replica: RunningGateway) -> Snapshot:
        with GatewayMetrics(replica.url, None, slo_edges=PLAN_EDGES) as source:
            return source.snapshot(self.pair)


@pytest.fixture(scope="module")
def fleet(
    demo_registry: Any,
    prometheus_server: RunningPrometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    from gray.demo.models import demo_dataset

    versions = demo_registry.versions
    pair = Pair(baseline=versions["baseline"], candidate=versions["bad_raises"])
    features, labels = demo_dataset()
    fleet = Fleet(
        demo_registry.uri,
        pair,
        tmp_path_factory.mktemp("fleet"),
        prometheus_server,
        rows=features.to_numpy().tolist()[:50],
        labels=[int(label) for label in labels.tolist()[:50]],
        columns=[str(c) for c in features.columns],
    )
    # Both replicas load at once: one start's wait is the other's.
    fleet.replicas = [fleet.start_replica(0), fleet.start_replica(1)]
    try:
        for replica in fleet.replicas:
            wait_for_ping(replica)
            with GatewayRouter(replica.url, None) as router:
                router.ensure_loaded(pair.candidate)
                route = RouteSpec(pair.baseline, pair.candidate, weight=0.5, mirror=0.5)
                router.apply(route, Lease("prometheus-test", 1))
        prometheus_server.set_targets({JOB: [r.url for r in fleet.replicas]})
        yield fleet
    finally:
        for replica in fleet.replicas:
            replica.stop()
        prometheus_server.set_targets({})


def source(prometheus: RunningPrometheus, **fields: Any) -> PrometheusMetrics:
    spec = PrometheusMetricsSpec.model_validate(
        {"url": prometheus.url, "selector": {"job": JOB}, **fields}
    )
    return PrometheusMetrics(PrometheusClient(spec.url), spec.layout(), slo_edges=PLAN_EDGES)


def summary(counters: VersionCounters) -> dict[str, Any]:
    """What the gates read, in a form that compares and prints well."""
    groups = counters.groups
    return {
        "groups": groups.to_dict() if groups is not None else None,
        "requests": counters.requests,
        "errors": counters.errors,
        "bad_requests": counters.bad_requests,
        "labelled": counters.labelled,
        "correct": counters.correct,
        "buckets": {edge: count for edge, count in counters.latency_buckets if count},
        "slow": {edge: count for edge, count in counters.slow if count},
    }


def sides(snapshot: Snapshot) -> dict[str, VersionCounters]:
    return {
        "baseline": snapshot.baseline,
        "candidate": snapshot.candidate,
        "shadow": snapshot.shadow.candidate,
    }


def added(*snapshots: Snapshot) -> dict[str, Any]:
    """The counters of several replicas' snapshots, summed, per role."""
    total: dict[str, Any] = {
        "pairs": sum(snapshot.shadow.pairs for snapshot in snapshots),
        "disagreements": sum(snapshot.shadow.disagreements for snapshot in snapshots),
    }
    for role in ("baseline", "candidate", "shadow"):
        parts = [summary(sides(snapshot)[role]) for snapshot in snapshots]
        merged: dict[str, Any] = {}
        for key in ("requests", "errors", "bad_requests", "labelled", "correct"):
            merged[key] = sum(part[key] for part in parts)
        for key in ("buckets", "slow"):
            merged[key] = {}
            for part in parts:
                for edge, count in part[key].items():
                    merged[key][edge] = merged[key].get(edge, 0) + count
        groups = [GroupCounts.from_dict(part["groups"]) for part in parts]
        merged["groups"] = functools.reduce(GroupCounts.plus, groups).to_dict()
        total[role] = merged
    return total


def read(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "pairs": snapshot.shadow.pairs,
        "disagreements": snapshot.shadow.disagreements,
        **{role: summary(counters) for role, counters in sides(snapshot).items()},
    }


def settle(
    metrics: PrometheusMetrics, pair: Pair, expected: Callable[[], dict[str, Any]]
) -> Snapshot:
    """Look until the source reads `expected` (Prometheus scrapes every second), at most
    SETTLE_SECONDS; then the last look must equal it."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        snapshot = metrics.snapshot(pair)
        want = expected()
        if read(snapshot) == want or time.monotonic() > deadline:
            assert read(snapshot) == want
            return snapshot
        time.sleep(0.3)


def test_counters_match_the_replicas_through_a_restart_and_a_lost_replica(fleet: Fleet) -> None:
    first, second = fleet.replicas
    pair = fleet.pair
    metrics = source(fleet.prometheus, preset="gray")
    settle(metrics, pair, lambda: added(fleet.stats(first), fleet.stats(second)))

    fleet.send(first, 60, bad=3)
    fleet.send(second, 40, bad=2)
    before = settle(metrics, pair, lambda: added(fleet.stats(first), fleet.stats(second)))
    assert before.candidate.errors > 0 and before.baseline.requests > 0
    assert before.baseline.bad_requests + before.candidate.bad_requests == 5
    assert before.candidate.slow_over(0.25) is not None
    assert before.shadow.candidate.requests > 0 and before.shadow.pairs > 0
    assert before.baseline.labelled > 0 and before.baseline.correct > 0
    # Split by hash group of the routing key, as the replicas count it, summed over them.
    assert before.candidate.groups is not None and before.shadow.candidate.groups is not None
    assert sum(before.candidate.groups.errors) == before.candidate.errors
    assert sum(before.baseline.groups.labelled) == before.baseline.labelled

    # Replica 0 restarts: its counters start again from zero.
    carried = fleet.stats(first)
    fleet.restart(0)
    first = fleet.replicas[0]
    fleet.send(first, 90)  # more than before the restart: a fall alone would not show it
    fleet.send(second, 10)
    after = settle(metrics, pair, lambda: added(carried, fleet.stats(first), fleet.stats(second)))
    naive = fleet.prometheus.query(f'sum(gray_requests_total{{job="{JOB}", traffic="live"}})')
    assert float(naive[0]["value"][1]) < after.baseline.requests + after.candidate.requests

    # Replica 1 disappears: what it counted stays counted, nothing goes down.
    kept = fleet.stats(second)
    second.stop()
    fleet.prometheus.wait_scraped()
    fleet.send(first, 20)
    final = settle(metrics, pair, lambda: added(carried, fleet.stats(first), kept))
    for role in ("baseline", "candidate"):
        assert getattr(final, role).requests >= getattr(after, role).requests


def test_a_selector_matching_nothing_reads_as_no_data(fleet: Fleet) -> None:
    metrics = source(fleet.prometheus, preset="gray", selector={"job": "no-such-job"})
    snapshot = metrics.snapshot(fleet.pair)
    nothing = VersionCounters(groups=GroupCounts())  # the preset counts by group
    assert snapshot.baseline == nothing
    assert snapshot.candidate == nothing
    assert snapshot.shadow.candidate == nothing


def test_errors_from_a_metric_without_series_read_as_no_data_not_as_no_errors(
    fleet: Fleet,
) -> None:
    fleet.send(fleet.replicas[0], 10)
    fleet.prometheus.wait_scraped()
    metrics = source(
        fleet.prometheus,
        queries={
            "requests": 'gray_requests_total{traffic="live"}',
            "errors": 'gray_errors_typo_total{traffic="live"}',
        },
    )
    snapshot = metrics.snapshot(fleet.pair)
    assert snapshot.baseline == VersionCounters()
    assert snapshot.candidate == VersionCounters()
    right = source(
        fleet.prometheus,
        queries={
            "requests": 'gray_requests_total{traffic="live"}',
            "errors": 'gray_errors_total{traffic="live"}',
        },
    )
    counted = right.snapshot(fleet.pair).baseline
    assert counted.requests > 0
    assert counted.groups is None  # queries of their own: no preset series split them


def test_a_query_prometheus_refuses_is_a_metrics_error_with_its_reason(
    prometheus_server: RunningPrometheus,
) -> None:
    # Python's re accepts a lookahead; Prometheus's RE2 does not.
    metrics = source(prometheus_server, preset="gray", selector={"job": "=~gray(?=-)"})
    with pytest.raises(MetricsError, match=r"bad_data: .*regexp"):
        metrics.snapshot(Pair("1", "2"))
