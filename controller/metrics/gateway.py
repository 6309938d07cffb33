"""The MetricsSource for gray's built-in gateway: `GET /admin/stats` as a Snapshot.

"No data" and "source broken" stay apart: a version the gateway has not counted
yet reads as zero counters, while an unreachable gateway or an unreadable answer
raises MetricsError. Counters restart from zero when the gateway restarts; this
adapter notices (the gateway's start time changes) and carries the last reading
forward, so the series it hands to the gates never goes backwards.

A gateway that counts per hash group of the routing key says so
(`routing_groups` in its stats); its versions then carry `groups`, zeros for a
version it has not counted yet, so a stage that starts before the candidate's
first request still has per-group counts to subtract from. An older gateway's
stats carry none, and every version's `groups` is None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import httpx

from gray.controller.errors import MetricsError
from gray.controller.routers.gateway import unauthorized_message
from gray.controller.types import (
    ROUTING_GROUPS,
    GroupCounts,
    Pair,
    ShadowCounters,
    Snapshot,
    VersionCounters,
)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 0.5


class GatewayMetrics:
    """Reads one gateway's counters; `slo_edges` (seconds) are always present in `slow`."""

    def __init__(
        self,
        url: str,
        token: str | None,
        slo_edges: Iterable[float] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.slo_edges = tuple(sorted(set(float(e) for e in slo_edges)))
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._retries = retries
        self._sleep = sleep
        self._started_at: float | None = None
        self._pair: Pair | None = None
        self._last: Snapshot | None = None
        self._carry: Snapshot | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GatewayMetrics:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def snapshot(self, versions: Pair) -> Snapshot:
        data = self._fetch()
        try:
            reading = self._to_snapshot(data, versions)
            started_at = float(data.get("started_at", 0.0))
        except (KeyError, TypeError, ValueError) as error:
            raise MetricsError(
                f"the gateway at {self.url} answered unreadable stats: {error!r}"
            ) from None
        return self._continue_series(versions, started_at, reading)

    def _continue_series(self, pair: Pair, started_at: float, reading: Snapshot) -> Snapshot:
        if pair != self._pair:
            self._pair, self._carry, self._last = pair, None, None
        elif self._started_at is not None and started_at != self._started_at and self._last:
            # The gateway restarted: what it counted before is kept, and added on.
            self._carry = self._last
        self._started_at = started_at
        result = add_snapshots(reading, self._carry) if self._carry else reading
        self._last = result
        return result

    def _fetch(self) -> dict[str, Any]:
        delay = RETRY_BACKOFF_SECONDS
        failure = ""
        for attempt in range(self._retries + 1):
            try:
                response = self._client.get("/admin/stats")
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError:
                        raise MetricsError(
                            f"the gateway at {self.url} answered stats that are not JSON"
                        ) from None
                    if not isinstance(data, dict):
                        raise MetricsError(f"the gateway at {self.url} answered unreadable stats")
                    return data
                if response.status_code == 401:
                    raise MetricsError(unauthorized_message(self.url, self._has_token))
                failure = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500:
                    break
            if attempt < self._retries:
                self._sleep(delay)
                delay *= 2
        raise MetricsError(f"cannot read stats from the gateway at {self.url}: {failure}")

    def _to_snapshot(self, data: dict[str, Any], pair: Pair) -> Snapshot:
        versions = data.get("versions") or {}
        grouped = _counts_groups(data)
        shadow = (data.get("shadow") or {}).get(pair.candidate)
        shadow_counters = ShadowCounters.from_dict(shadow) if shadow else ShadowCounters()
        return Snapshot(
            taken_at=float(data["taken_at"]),
            baseline=self._counters(versions.get(pair.baseline), grouped),
            candidate=self._counters(versions.get(pair.candidate), grouped),
            shadow=ShadowCounters(
                pairs=shadow_counters.pairs,
                disagreements=shadow_counters.disagreements,
                baseline=self._with_edges(shadow_counters.baseline, grouped),
                candidate=self._with_edges(shadow_counters.candidate, grouped),
            ),
        )

    def _counters(self, data: dict[str, Any] | None, grouped: bool) -> VersionCounters:
        counters = VersionCounters.from_dict(data) if data else VersionCounters()
        return self._with_edges(counters, grouped)

    def _with_edges(self, counters: VersionCounters, grouped: bool) -> VersionCounters:
        """Make sure every requested SLO edge is counted, reading it off the histogram
        (per group only where the gateway counts the edge: a group has no histogram)."""
        slow = dict(counters.slow)
        for edge in self.slo_edges:
            if counters.slow_over(edge) is None:
                slow[edge] = slow_from_histogram(counters.latency_buckets, counters.requests, edge)
        groups = None
        if grouped:  # a version not counted yet has no groups: all zeros
            groups = counters.groups if counters.groups is not None else GroupCounts()
        return replace(counters, slow=tuple(sorted(slow.items())), groups=groups)


def _counts_groups(data: dict[str, Any]) -> bool:
    """Whether the gateway counts per hash group, and with gray's number of groups."""
    groups = data.get("routing_groups")
    if groups is None:
        return False
    if int(groups) != ROUTING_GROUPS:
        raise ValueError(f"routing_groups is {groups}, this gray reads {ROUTING_GROUPS}")
    return True


def slow_from_histogram(buckets: tuple[tuple[float, int], ...], requests: int, edge: float) -> int:
    """Requests slower than `edge`, from a cumulative histogram (interpolated between edges)."""
    if not buckets or requests == 0:
        return 0
    lower_edge, lower_count = 0.0, 0
    for upper_edge, upper_count in buckets:
        if abs(upper_edge - edge) < 1e-9:
            return requests - upper_count
        if upper_edge > edge:
            if upper_edge == float("inf"):
                return requests - lower_count
            share = (edge - lower_edge) / (upper_edge - lower_edge)
            at_edge = lower_count + share * (upper_count - lower_count)
            return requests - round(at_edge)
        lower_edge, lower_count = upper_edge, upper_count
    return requests - lower_count


def _plus_counters(a: VersionCounters, b: VersionCounters) -> VersionCounters:
    """Two readings added; per-group counts only when both sides have them."""
    b_slow = dict(b.slow)
    edges = sorted(
        {edge for edge, _ in a.latency_buckets} | {edge for edge, _ in b.latency_buckets}
    )
    return VersionCounters(
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        bad_requests=a.bad_requests + b.bad_requests,
        latency_buckets=tuple(
            (edge, _at(a.latency_buckets, edge) + _at(b.latency_buckets, edge)) for edge in edges
        ),
        slow=tuple((edge, count + b_slow.get(edge, 0)) for edge, count in a.slow),
        labelled=a.labelled + b.labelled,
        correct=a.correct + b.correct,
        replayed_failures=a.replayed_failures + b.replayed_failures,
        baseline_also_failed=a.baseline_also_failed + b.baseline_also_failed,
        groups=a.groups.plus(b.groups) if a.groups is not None and b.groups is not None else None,
    )


def _at(buckets: tuple[tuple[float, int], ...], edge: float) -> int:
    """A cumulative histogram's count at `edge` (the nearest edge at or below it)."""
    count = 0
    for upper, value in buckets:
        if upper > edge:
            break
        count = value
    return count


def add_snapshots(reading: Snapshot, carry: Snapshot) -> Snapshot:
    """Two cumulative series added, counter by counter; the time is `reading`'s."""
    return Snapshot(
        taken_at=reading.taken_at,
        baseline=_plus_counters(reading.baseline, carry.baseline),
        candidate=_plus_counters(reading.candidate, carry.candidate),
        shadow=ShadowCounters(
            pairs=reading.shadow.pairs + carry.shadow.pairs,
            disagreements=reading.shadow.disagreements + carry.shadow.disagreements,
            baseline=_plus_counters(reading.shadow.baseline, carry.shadow.baseline),
            candidate=_plus_counters(reading.shadow.candidate, carry.shadow.candidate),
        ),
    )
