"""The `istio` preset against a real Prometheus scraping Istio's series (tests/istio_exporter.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gray.controller.metrics.prometheus import PrometheusMetrics, PrometheusMetricsSpec
from gray.controller.metrics.prometheus.promql import PrometheusClient
from gray.controller.types import Pair, Snapshot
from tests.istio_exporter import IstioExporter
from tests.prometheus_server import RunningPrometheus

pytestmark = pytest.mark.slow

PAIR = Pair(baseline="1", candidate="2")
SETTLE_SECONDS = 8.0


@pytest.fixture(scope="module")
def exporter(prometheus_server: RunningPrometheus) -> Iterator[IstioExporter]:
    with IstioExporter().start() as running:
        prometheus_server.set_targets({"istio-mesh": [running.url]})
        yield running
    prometheus_server.set_targets({})


def totals(snapshot: Snapshot) -> dict[str, tuple[int, int, int, int | None]]:
    """(requests, errors, bad requests, slower than 50 ms) per role."""
    return {
        role: (c.requests, c.errors, c.bad_requests, c.slow_over(0.05))
        for role, c in (("baseline", snapshot.baseline), ("candidate", snapshot.candidate))
    }


def settle(metrics: PrometheusMetrics, expected: dict[str, tuple[int, int, int, int]]) -> Snapshot:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        snapshot = metrics.snapshot(PAIR)
        if totals(snapshot) == expected or time.monotonic() > deadline:
            assert totals(snapshot) == expected
            return snapshot
        time.sleep(0.3)


def test_istio_series_by_destination_version_through_a_restart_a_gap_and_a_lost_target(
    exporter: IstioExporter, prometheus_server: RunningPrometheus
) -> None:
    spec = PrometheusMetricsSpec(
        url=prometheus_server.url,
        preset="istio",
        selector={"destination_service_name": "fraud"},
        version_value="v{version}",
    )
    plan_edges = (0.05,)
    metrics = PrometheusMetrics(PrometheusClient(spec.url), spec.layout(), slo_edges=plan_edges)
    for _ in range(40):
        exporter.record("fraud", "v1", 200, milliseconds=12.0)
    for _ in range(4):
        exporter.record("fraud", "v1", 503, milliseconds=30.0)
    for _ in range(3):
        exporter.record("fraud", "v1", 400, milliseconds=4.0)
    for _ in range(30):
        exporter.record("fraud", "v2", 200, milliseconds=80.0)
    for _ in range(6):
        exporter.record("fraud", "v2", 500, milliseconds=300.0)
    for _ in range(50):
        exporter.record("iris", "v2", 500, milliseconds=900.0)  # another model: not counted
    # Each request is reported by both sidecars; the preset counts it once.
    first = settle(metrics, {"baseline": (47, 4, 3, 0), "candidate": (36, 6, 0, 36)})
    buckets = dict(first.candidate.latency_buckets)
    assert buckets[0.05] == 0 and buckets[0.1] == 30 and buckets[float("inf")] == 36

    # The pod restarts: its sidecar's counters start from zero.
    exporter.restart()
    prometheus_server.wait_scraped()
    for _ in range(10):
        exporter.record("fraud", "v1", 200, milliseconds=12.0)
    for _ in range(5):
        exporter.record("fraud", "v2", 200, milliseconds=80.0)
    settle(metrics, {"baseline": (57, 4, 3, 0), "candidate": (41, 6, 0, 41)})

    # Scrapes fail for a while (the pod is unreachable, not restarted) and the requests
    # it answered meanwhile show up when it is back: counted once, after the gap.
    exporter.stop()
    prometheus_server.wait_scraped()
    for _ in range(7):
        exporter.record("fraud", "v2", 200, milliseconds=80.0)
    settle(metrics, {"baseline": (57, 4, 3, 0), "candidate": (41, 6, 0, 41)})
    exporter.start()
    settle(metrics, {"baseline": (57, 4, 3, 0), "candidate": (48, 6, 0, 48)})

    # The target disappears: nothing it counted is taken back.
    exporter.stop()
    prometheus_server.wait_scraped()
    settle(metrics, {"baseline": (57, 4, 3, 0), "candidate": (48, 6, 0, 48)})
    metrics.close()
