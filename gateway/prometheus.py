"""The gateway's counters as a Prometheus page, written by `prometheus-client`.

Every series carries `version` (the model version that did the work) and
`traffic`: "live" for routed requests, "forced" for requests whose caller chose
the version, "shadow" for the candidate's side of mirrored requests.

The `gray_group_*` series split live and shadow traffic by hash group of the
routing key (`group`, 0 to ROUTING_GROUPS - 1), for the rate gates that compare
groups rather than requests. A group's series appears once it counted something,
as a labelled counter does at its first increment: errors, slow requests and
labels are rare, so most of the ROUTING_GROUPS series per version and counter
are never written and a scrape stays small. Forced traffic, which no gate
reads, is not split.

The counters live in `GatewayStats`, not in prometheus-client's own metric
objects: the controller reads the same numbers through /admin/stats, and a
second set of counters could drift from the first. So one collector per scrape
turns a `StatsView` into metric families, and the library writes the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from gray.controller.types import ROUTING_GROUPS, Applied, VersionCounters
from gray.gateway.stats import StatsView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_TRAFFIC_LABELS = ["version", "traffic"]
_COUNTS = (
    ("gray_requests_total", "requests", "Prediction requests handled."),
    ("gray_errors_total", "errors", "Prediction requests the model failed (5xx)."),
    ("gray_bad_requests_total", "bad_requests", "Prediction requests refused as unusable."),
    ("gray_labelled_total", "labelled", "Predicted rows that later received a label."),
    ("gray_correct_total", "correct", "Labelled rows whose prediction equalled the label."),
)
_GROUP_LABELS = [*_TRAFFIC_LABELS, "group"]
_GROUP_NAMES = tuple(str(group) for group in range(ROUTING_GROUPS))
_GROUPED_TRAFFIC = ("live", "shadow")


@dataclass(frozen=True)
class Extras:
    """What the server and the lease add to the counters: `lease` is `RouteStore.status()`."""

    lease: dict[str, Any] = field(default_factory=dict)
    lease_expiries: int = 0
    connections_refused: int = 0
    header_timeouts: int = 0


@dataclass(frozen=True, eq=False)  # the registry keys collectors by identity
class _GatewayCollector:
    """One scrape's worth of gateway state, as prometheus-client metric families."""

    view: StatsView
    applied: Applied
    states: dict[str, str]
    extras: Extras

    def collect(self) -> Iterator[Metric]:
        rows = _traffic(self.view)
        yield from _traffic_counters(rows)
        yield _latency_histogram(rows, self.view)
        yield _slow_requests(rows)
        yield from _group_counters(rows)
        yield from _shadow_counters(self.view)
        yield from _gateway_counters(self.view, self.extras)
        yield from _route_gauges(self.applied, self.states, self.view, self.extras)


def render(
    view: StatsView, applied: Applied, states: dict[str, str], extras: Extras | None = None
) -> str:
    """All metrics as one text page (exposition format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_GatewayCollector(view, applied, states, extras or Extras()))
    return generate_latest(registry).decode("utf-8")


def _traffic(view: StatsView) -> list[tuple[str, str, VersionCounters]]:
    rows = [("live", v, c) for v, c in sorted(view.versions.items())]
    rows += [("forced", v, c) for v, c in sorted(view.forced.items())]
    rows += [("shadow", v, s.candidate) for v, s in sorted(view.shadow.items())]
    return rows


def _traffic_counters(rows: list[tuple[str, str, VersionCounters]]) -> Iterator[Metric]:
    for name, attribute, help_text in _COUNTS:
        family = CounterMetricFamily(name, help_text, labels=_TRAFFIC_LABELS)
        for traffic, version, counters in rows:
            family.add_metric([version, traffic], getattr(counters, attribute))
        yield family


def _latency_histogram(rows: list[tuple[str, str, VersionCounters]], view: StatsView) -> Metric:
    family = HistogramMetricFamily(
        "gray_request_duration_seconds",
        "Time to answer a prediction request.",
        labels=_TRAFFIC_LABELS,
    )
    for traffic, version, counters in rows:
        # The gateway's buckets are already cumulative and end at +Inf, as the format wants.
        buckets = [(floatToGoString(edge), count) for edge, count in counters.latency_buckets]
        if not buckets or buckets[-1][0] != "+Inf":
            buckets.append(("+Inf", counters.requests))
        family.add_metric(
            [version, traffic], buckets, view.latency_sums.get((traffic, version), 0.0)
        )
    return family


def _slow_requests(rows: list[tuple[str, str, VersionCounters]]) -> Metric:
    family = CounterMetricFamily(
        "gray_slow_requests_total",
        "Requests slower than a configured SLO edge.",
        labels=[*_TRAFFIC_LABELS, "slo_seconds"],
    )
    for traffic, version, counters in rows:
        for edge, count in counters.slow:
            family.add_metric([version, traffic, floatToGoString(edge)], count)
    return family


def _group_counters(rows: list[tuple[str, str, VersionCounters]]) -> Iterator[Metric]:
    grouped = [
        (traffic, version, counters.groups)
        for traffic, version, counters in rows
        if traffic in _GROUPED_TRAFFIC and counters.groups is not None
    ]
    for name, attribute, help_text in _COUNTS:
        family = CounterMetricFamily(
            name.replace("gray_", "gray_group_", 1),
            help_text[:-1] + ", by hash group of the routing key.",
            labels=_GROUP_LABELS,
        )
        for traffic, version, groups in grouped:
            for group, count in zip(_GROUP_NAMES, getattr(groups, attribute), strict=True):
                if count:
                    family.add_metric([version, traffic, group], count)
        yield family
    slow = CounterMetricFamily(
        "gray_group_slow_requests_total",
        "Requests slower than a configured SLO edge, by hash group of the routing key.",
        labels=[*_GROUP_LABELS, "slo_seconds"],
    )
    for traffic, version, groups in grouped:
        for edge, counts in groups.slow:
            edge_text = floatToGoString(edge)
            for group, count in zip(_GROUP_NAMES, counts, strict=True):
                if count:
                    slow.add_metric([version, traffic, group, edge_text], count)
    yield slow


def _shadow_counters(view: StatsView) -> Iterator[Metric]:
    for name, attribute, help_text in (
        ("gray_shadow_pairs_total", "pairs", "Mirrored requests both versions answered."),
        (
            "gray_shadow_disagreements_total",
            "disagreements",
            "Mirrored requests whose outputs differed.",
        ),
    ):
        family = CounterMetricFamily(name, help_text, labels=["version"])
        for version, shadow in sorted(view.shadow.items()):
            family.add_metric([version], getattr(shadow, attribute))
        yield family


def _gateway_counters(view: StatsView, extras: Extras) -> Iterator[Metric]:
    for name, value, help_text in (
        (
            "gray_ignored_overrides_total",
            view.ignored_overrides,
            "Requests whose X-Model-Version was ignored (caller not allowed).",
        ),
        (
            "gray_shadow_dropped_total",
            view.shadow_dropped,
            "Mirrored requests dropped because the mirror queue was full.",
        ),
        (
            "gray_prediction_log_dropped_total",
            view.log_dropped,
            "Prediction log lines dropped because the writer fell behind.",
        ),
        (
            "gray_lease_expiries_total",
            extras.lease_expiries,
            "Leases that expired unrenewed, sending everything back to the baseline.",
        ),
        (
            "gray_connections_refused_total",
            extras.connections_refused,
            "Connections refused because --max-connections were open.",
        ),
        (
            "gray_header_timeouts_total",
            extras.header_timeouts,
            "Connections closed because a request's headers took longer than --header-timeout.",
        ),
    ):
        yield CounterMetricFamily(name, help_text, value=value)


def _route_gauges(
    applied: Applied, states: dict[str, str], view: StatsView, extras: Extras
) -> Iterator[Metric]:
    route = applied.route
    candidate = route.candidate or ""
    weight = GaugeMetricFamily(
        "gray_route_weight_ratio", "Share of traffic the candidate gets.", labels=["version"]
    )
    weight.add_metric([candidate], route.weight)
    yield weight
    mirror = GaugeMetricFamily(
        "gray_route_mirror_ratio", "Share of traffic mirrored.", labels=["version"]
    )
    mirror.add_metric([candidate], route.mirror)
    yield mirror
    yield GaugeMetricFamily(
        "gray_route_epoch",
        "Lease epoch of the route in force.",
        value=applied.lease.epoch if applied.lease else 0,
    )
    yield GaugeMetricFamily(
        "gray_route_lease_expires_at_seconds",
        "Unix time the candidate's traffic returns to the baseline unless renewed (0: never).",
        value=extras.lease.get("lease_expires_at") or 0,
    )
    yield GaugeMetricFamily(
        "gray_route_held",
        "1 when candidate traffic is held with no expiry (hold).",
        value=1 if extras.lease.get("hold") else 0,
    )
    ready = GaugeMetricFamily(
        "gray_version_ready", "1 when a version is loaded and warm.", labels=["version"]
    )
    for version, state in sorted(states.items()):
        ready.add_metric([version], 1 if state == "ready" else 0)
    yield ready
    yield GaugeMetricFamily(
        "gray_start_time_seconds", "Unix time the gateway started.", value=view.started_at
    )
