"""Counters, the fine latency histogram, the one-minute window and the Prometheus page."""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess

import pytest

from gray.controller.types import Applied, Lease, RouteSpec
from gray.gateway import prometheus
from gray.gateway.stats import (
    FINE_EDGE_COUNT,
    GatewayStats,
    Outcome,
    fine_edges,
    quantile_from_buckets,
)
from tests.metrics_text import sample


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_fine_edges_are_log_spaced_from_half_a_millisecond_to_a_minute() -> None:
    edges = fine_edges()
    assert len(edges) == FINE_EDGE_COUNT
    assert edges[0] == pytest.approx(0.0005) and edges[-1] == pytest.approx(60.0)
    ratios = [b / a for a, b in itertools.pairwise(edges)]
    assert max(ratios) / min(ratios) < 1.01
    assert 0.25 in fine_edges([0.25, -1.0, math.inf])


def test_slow_counts_are_exact_at_configured_edges() -> None:
    stats = GatewayStats(slo_edges=(0.1, 0.25), clock=Clock())
    for latency in (0.05, 0.1, 0.1000001, 0.2, 0.25, 0.3, 2.0):
        stats.record("1", "baseline", latency, Outcome.OK, 0)
    counters = stats.view().versions["1"]
    assert counters.requests == 7
    assert counters.slow_over(0.1) == 5  # strictly slower than the edge
    assert counters.slow_over(0.25) == 2
    assert counters.latency_buckets[-1] == (math.inf, 7)
    cumulative = [count for _, count in counters.latency_buckets]
    assert cumulative == sorted(cumulative)


def test_outcomes_roles_and_labels_are_kept_apart() -> None:
    stats = GatewayStats(slo_edges=(), clock=Clock())
    stats.record("1", "baseline", 0.01, Outcome.OK, 0)
    stats.record("1", "baseline", 0.01, Outcome.ERROR, 0)
    stats.record("1", "baseline", 0.001, Outcome.BAD_REQUEST, 0)
    stats.record("2", "candidate", 0.01, Outcome.OK, 0)
    stats.record("2", "forced", 0.01, Outcome.OK, 0)
    stats.record_labels("1", "baseline", 3, 2, 0)
    stats.record_shadow("2", (0.01, Outcome.OK), (0.02, Outcome.OK), agreed=False, group=0)
    stats.record_shadow("2", (0.01, Outcome.OK), (0.02, Outcome.ERROR), agreed=None, group=0)
    stats.count_ignored_override()
    view = stats.view()
    one = view.versions["1"]
    assert (one.requests, one.errors, one.bad_requests, one.labelled, one.correct) == (
        3,
        1,
        1,
        3,
        2,
    )
    assert view.versions["2"].requests == 1
    assert view.forced["2"].requests == 1
    shadow = view.shadow["2"]
    assert (shadow.pairs, shadow.disagreements) == (1, 1)
    assert (shadow.baseline.requests, shadow.candidate.requests, shadow.candidate.errors) == (
        2,
        2,
        1,
    )
    assert view.ignored_overrides == 1


def test_health_window_forgets_traffic_older_than_a_minute() -> None:
    clock = Clock()
    stats = GatewayStats(slo_edges=(), clock=clock)
    for _ in range(98):
        stats.record("1", "baseline", 0.010, Outcome.OK, 0)
    stats.record("1", "baseline", 0.5, Outcome.ERROR, 0)
    stats.record("1", "baseline", 0.5, Outcome.ERROR, 0)
    recent = stats.recent("1")
    assert recent.requests == 100 and recent.errors == 2
    assert recent.error_rate == pytest.approx(0.02)
    assert recent.mean_latency == pytest.approx((98 * 0.01 + 1.0) / 100)
    assert 0.3 < recent.p99_latency <= 0.5 + 1e-9
    clock.now += 59
    assert stats.recent("1").requests == 100
    clock.now += 1
    assert stats.recent("1").requests == 0
    assert stats.recent("unknown").error_rate is None


def test_quantile_interpolates_inside_its_bucket() -> None:
    edges = (1.0, 2.0, 4.0)
    assert quantile_from_buckets([0, 10, 0, 0], edges, 0.5) == pytest.approx(1.5)
    assert quantile_from_buckets([0, 0, 0, 5], edges, 0.99) == 4.0
    assert quantile_from_buckets([0, 0, 0, 0], edges, 0.5) is None


def metrics_page() -> str:
    stats = GatewayStats(slo_edges=(0.25,), clock=Clock())
    stats.record("1", "baseline", 0.01, Outcome.OK, 0)
    stats.record("2", "candidate", 0.3, Outcome.ERROR, 0)
    stats.record("2", "forced", 0.01, Outcome.OK, 0)
    stats.record_shadow('2"x', (0.01, Outcome.OK), (0.02, Outcome.OK), agreed=True, group=0)
    applied = Applied(RouteSpec("1", "2", weight=0.2, mirror=0.1), Lease("r", 3))
    return prometheus.render(stats.view(), applied, {"1": "ready", "2": "loading"})


def test_prometheus_page_carries_version_labels_and_histograms() -> None:
    page = metrics_page()
    assert sample(page, "gray_requests_total", version="1", traffic="live") == 1
    assert sample(page, "gray_errors_total", version="2", traffic="live") == 1
    assert sample(page, "gray_errors_total", version="1", traffic="live") == 0
    assert sample(page, "gray_requests_total", version="2", traffic="forced") == 1
    slow = {"version": "2", "traffic": "live", "slo_seconds": "0.25"}
    assert sample(page, "gray_slow_requests_total", **slow) == 1
    assert sample(page, "gray_request_duration_seconds_bucket", version="1", le="+Inf") == 1
    assert sample(page, "gray_request_duration_seconds_bucket", version="1", le="0.25") == 1
    assert sample(page, "gray_request_duration_seconds_bucket", version="2", le="0.25") == 0
    assert sample(page, "gray_request_duration_seconds_count", version="2", traffic="live") == 1
    assert sample(page, "gray_shadow_pairs_total", version='2"x') == 1
    assert sample(page, "gray_route_epoch") == 3
    assert sample(page, "gray_route_weight_ratio", version="2") == 0.2
    assert sample(page, "gray_version_ready", version="2") == 0
    assert sample(page, "gray_version_ready", version="1") == 1
    assert page.endswith("\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_prometheus_page_passes_promtool() -> None:
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=metrics_page(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_counter_is_also_split_by_hash_group() -> None:
    stats = GatewayStats(slo_edges=(0.25, 0.1), clock=Clock())
    for latency, outcome, group in (
        (0.05, Outcome.OK, 3),
        (0.1, Outcome.OK, 3),  # at an edge is not slower than it
        (0.2, Outcome.ERROR, 3),
        (0.3, Outcome.BAD_REQUEST, 63),
        (2.0, Outcome.ERROR, 0),
    ):
        stats.record("1", "baseline", latency, outcome, group)
    stats.record_labels("1", "baseline", 4, 3, 63)
    stats.record("1", "forced", 0.01, Outcome.OK, 5)
    stats.record_shadow("2", (0.01, Outcome.OK), (0.3, Outcome.ERROR), agreed=None, group=7)
    stats.record_shadow_labels("2", "candidate", 1, 0, 7)
    view = stats.view()
    one = view.versions["1"]
    groups = one.groups
    assert groups is not None
    assert (groups.requests[3], groups.requests[63], groups.requests[0]) == (3, 1, 1)
    assert (groups.errors[3], groups.errors[0], groups.bad_requests[63]) == (1, 1, 1)
    assert (groups.labelled[63], groups.correct[63]) == (4, 3)
    assert groups.slow_over(0.1) == tuple(int(g in (0, 3, 63)) for g in range(64))
    assert groups.slow_over(0.25) == tuple(int(g in (0, 63)) for g in range(64))
    for name in ("requests", "errors", "bad_requests", "labelled", "correct"):
        assert sum(getattr(groups, name)) == getattr(one, name)
    for edge in (0.1, 0.25):
        assert sum(groups.slow_over(edge) or ()) == one.slow_over(edge)
    forced = view.forced["1"].groups
    assert forced is not None and forced.requests[5] == 1 and sum(forced.requests) == 1
    shadow = view.shadow["2"]
    assert shadow.baseline.groups is not None and shadow.baseline.groups.requests[7] == 1
    assert shadow.candidate.groups is not None
    assert (shadow.candidate.groups.errors[7], shadow.candidate.groups.labelled[7]) == (1, 1)


def test_prometheus_page_splits_live_and_shadow_traffic_by_group() -> None:
    page = metrics_page()
    live = {"version": "2", "traffic": "live"}
    assert sample(page, "gray_group_requests_total", **live, group="0") == 1
    assert sample(page, "gray_group_errors_total", **live, group="0") == 1
    # A group that counted nothing has no series yet, as a labelled counter before its first
    # increment: most groups of rare counters are never written.
    assert sample(page, "gray_group_requests_total", **live, group="63") is None
    slow = {**live, "group": "0", "slo_seconds": "0.25"}
    assert sample(page, "gray_group_slow_requests_total", **slow) == 1
    shadow = {"version": '2"x', "traffic": "shadow", "group": "0"}
    assert sample(page, "gray_group_requests_total", **shadow) == 1
    assert sample(page, "gray_group_requests_total", traffic="forced") is None
    assert page.count("gray_group_requests_total{") == 3  # two live versions, one shadow
