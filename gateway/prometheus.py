"""The gateway's counters in the Prometheus text exposition format (version 0.0.4).

Every series carries `version` (the model version that did the work) and
`traffic`: "live" for routed requests, "forced" for requests whose caller chose
the version, "shadow" for the candidate's side of mirrored requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gray.controller.types import Applied, VersionCounters
from gray.gateway.stats import StatsView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"


def _traffic(view: StatsView) -> list[tuple[str, str, VersionCounters]]:
    rows = [("live", v, c) for v, c in sorted(view.versions.items())]
    rows += [("forced", v, c) for v, c in sorted(view.forced.items())]
    rows += [("shadow", v, s.candidate) for v, s in sorted(view.shadow.items())]
    return rows


@dataclass(frozen=True)
class Extras:
    """What the server and the lease add to the counters: `lease` is `RouteStore.status()`."""

    lease: dict[str, Any] = field(default_factory=dict)
    lease_expiries: int = 0
    connections_refused: int = 0
    header_timeouts: int = 0


def render(
    view: StatsView, applied: Applied, states: dict[str, str], extras: Extras | None = None
) -> str:
    """All metrics as one text page."""
    lines = [*_lines(view, applied, states), *_extra_lines(extras or Extras())]
    return "\n".join(lines) + "\n"


def _extra_lines(extras: Extras) -> Iterator[str]:
    lease = extras.lease
    yield from _family(
        "gray_route_lease_expires_at_seconds",
        "gauge",
        "Unix time the candidate's traffic returns to the baseline unless renewed (0: never).",
    )
    yield f"gray_route_lease_expires_at_seconds {_number(lease.get('lease_expires_at') or 0)}"
    yield from _family(
        "gray_route_held", "gauge", "1 when candidate traffic is held with no expiry (hold)."
    )
    yield f"gray_route_held {1 if lease.get('hold') else 0}"
    for name, value, help_text in (
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
        yield from _family(name, "counter", help_text)
        yield f"{name} {value}"


def _lines(view: StatsView, applied: Applied, states: dict[str, str]) -> Iterator[str]:
    rows = _traffic(view)
    simple = (
        ("gray_requests_total", "requests", "Prediction requests handled."),
        ("gray_errors_total", "errors", "Prediction requests the model failed (5xx)."),
        ("gray_bad_requests_total", "bad_requests", "Prediction requests refused as unusable."),
        ("gray_labelled_total", "labelled", "Predicted rows that later received a label."),
        ("gray_correct_total", "correct", "Labelled rows whose prediction equalled the label."),
    )
    for name, attribute, help_text in simple:
        yield from _family(name, "counter", help_text)
        for traffic, version, counters in rows:
            value = getattr(counters, attribute)
            yield f"{name}{_labels(version=version, traffic=traffic)} {value}"

    name = "gray_request_duration_seconds"
    yield from _family(name, "histogram", "Time to answer a prediction request.")
    for traffic, version, counters in rows:
        for edge, count in counters.latency_buckets:
            labels = _labels(version=version, traffic=traffic, le=_number(edge))
            yield f"{name}_bucket{labels} {count}"
        latency_sum = view.latency_sums.get((traffic, version), 0.0)
        yield f"{name}_sum{_labels(version=version, traffic=traffic)} {_number(latency_sum)}"
        yield f"{name}_count{_labels(version=version, traffic=traffic)} {counters.requests}"

    name = "gray_slow_requests_total"
    yield from _family(name, "counter", "Requests slower than a configured SLO edge.")
    for traffic, version, counters in rows:
        for edge, count in counters.slow:
            labels = _labels(version=version, traffic=traffic, slo_seconds=_number(edge))
            yield f"{name}{labels} {count}"

    for name, attribute, help_text in (
        ("gray_shadow_pairs_total", "pairs", "Mirrored requests both versions answered."),
        (
            "gray_shadow_disagreements_total",
            "disagreements",
            "Mirrored requests whose outputs differed.",
        ),
    ):
        yield from _family(name, "counter", help_text)
        for version, shadow in sorted(view.shadow.items()):
            yield f"{name}{_labels(version=version)} {getattr(shadow, attribute)}"

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
    ):
        yield from _family(name, "counter", help_text)
        yield f"{name} {value}"

    route = applied.route
    yield from _family("gray_route_weight_ratio", "gauge", "Share of traffic the candidate gets.")
    yield f"gray_route_weight_ratio{_labels(version=route.candidate or '')} {_number(route.weight)}"
    yield from _family("gray_route_mirror_ratio", "gauge", "Share of traffic mirrored.")
    yield f"gray_route_mirror_ratio{_labels(version=route.candidate or '')} {_number(route.mirror)}"
    yield from _family("gray_route_epoch", "gauge", "Lease epoch of the route in force.")
    yield f"gray_route_epoch {applied.lease.epoch if applied.lease else 0}"
    yield from _family("gray_version_ready", "gauge", "1 when a version is loaded and warm.")
    for version, state in sorted(states.items()):
        yield f"gray_version_ready{_labels(version=version)} {1 if state == 'ready' else 0}"
    yield from _family("gray_start_time_seconds", "gauge", "Unix time the gateway started.")
    yield f"gray_start_time_seconds {_number(view.started_at)}"
