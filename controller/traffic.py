"""A look's traffic per version, compact enough to journal with every look.

The gates keep only what they judge; a person reading a rollout afterwards wants
the traffic itself: how many requests each version answered between two looks,
how many failed or were refused, and how slow they were. A look's journal entry
carries it as `traffic` (a few hundred bytes), which `gray rollout report` draws:

    {"baseline":  [requests, errors, bad_requests, p50, p90, p99],
     "candidate": [...],          # answered for users
     "mirrored":  [...],          # the candidate's answers to mirrored requests
     "pairs":     [pairs, disagreements]}

Counts are those that accrued since the previous look (a counter that went down,
an endpoint restart, counts as nothing, as for the gates); latency percentiles are
in seconds, read off the latency histogram, and null without one. A version with
no request in the interval is left out.
"""

from __future__ import annotations

import math
from typing import Any

from gray.controller.gates.increments import increment
from gray.controller.types import Snapshot, VersionCounters

PERCENTILES = (0.5, 0.9, 0.99)
ROW_FIELDS = ("requests", "errors", "bad_requests", "p50", "p90", "p99")
_DIGITS = 4  # significant digits kept of a percentile: the histogram's edges are coarser


def look_traffic(previous: Snapshot, current: Snapshot) -> dict[str, Any]:
    """What each version answered between `previous` and `current`, for the journal."""
    live = increment(previous, current, "live")
    shadow = increment(previous, current, "shadow")
    traffic: dict[str, Any] = {}
    for name, counters in (
        ("baseline", live.baseline),
        ("candidate", live.candidate),
        ("mirrored", shadow.candidate),
    ):
        if counters.requests > 0:
            traffic[name] = traffic_row(counters)
    if shadow.pairs > 0:
        traffic["pairs"] = [shadow.pairs, shadow.disagreements]
    return traffic


def traffic_row(counters: VersionCounters) -> list[int | float | None]:
    """[requests, errors, bad_requests, p50, p90, p99] of one version's increment."""
    return [
        counters.requests,
        counters.errors,
        counters.bad_requests,
        *(_rounded(percentile(counters.latency_buckets, q)) for q in PERCENTILES),
    ]


def percentile(buckets: tuple[tuple[float, int], ...], quantile: float) -> float | None:
    """The `quantile` of a cumulative latency histogram, interpolated inside its bucket as
    Prometheus' histogram_quantile does; None without counts. A quantile in the last,
    unbounded bucket reads as the highest finite edge: all the histogram can say."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = quantile * total
    lower_edge, lower_count = 0.0, 0
    for edge, count in buckets:
        if count >= rank:
            if math.isinf(edge):
                return lower_edge
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return lower_edge


def _rounded(value: float | None) -> float | None:
    if value is None or value == 0:
        return value
    return round(value, _DIGITS - 1 - math.floor(math.log10(abs(value))))
