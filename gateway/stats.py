"""Per-version counters: cumulative since start, plus a one-minute window for /health.

Latency goes into a fine log-spaced histogram (0.5 ms to 60 s, with every
configured SLO edge added as an exact edge), so a slow-request count for any
configured edge is exact and any other edge can be read off closely.

Every counter is also kept per hash group of the routing key (ROUTING_GROUPS of
them, a slow-request count per configured SLO edge): the units the rate gates
compare when errors cluster by key. The per-group lists are allocated with their
version, so counting a request adds to a few list cells and allocates nothing.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gray.controller.types import ROUTING_GROUPS, GroupCounts, ShadowCounters, VersionCounters

FINE_EDGE_COUNT = 60
FINE_EDGE_LOW = 0.0005
FINE_EDGE_HIGH = 60.0
WINDOW_SECONDS = 60


def fine_edges(extra: Iterable[float] = ()) -> tuple[float, ...]:
    """Log-spaced latency edges in seconds, with `extra` edges merged in."""
    ratio = (FINE_EDGE_HIGH / FINE_EDGE_LOW) ** (1 / (FINE_EDGE_COUNT - 1))
    edges = {float(f"{FINE_EDGE_LOW * ratio**i:.4g}") for i in range(FINE_EDGE_COUNT)}
    edges.update(float(e) for e in extra if e > 0 and math.isfinite(e))
    return tuple(sorted(edges))


class Outcome:
    OK = "ok"
    ERROR = "error"
    BAD_REQUEST = "bad_request"


def _per_group() -> list[int]:
    return [0] * ROUTING_GROUPS


@dataclass
class VersionStats:
    """Mutable cumulative counters of one version; guarded by the owner's lock.

    `group_slow` holds, per SLO edge (ascending, as `slo_edges`), the per-group
    number of requests slower than that edge.
    """

    bucket_count: int
    slo_edges: tuple[float, ...] = ()
    requests: int = 0
    errors: int = 0
    bad_requests: int = 0
    latency_sum: float = 0.0
    labelled: int = 0
    correct: int = 0
    buckets: list[int] = field(default_factory=list)
    group_requests: list[int] = field(default_factory=_per_group)
    group_errors: list[int] = field(default_factory=_per_group)
    group_bad_requests: list[int] = field(default_factory=_per_group)
    group_labelled: list[int] = field(default_factory=_per_group)
    group_correct: list[int] = field(default_factory=_per_group)
    group_slow: list[tuple[float, list[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.buckets:
            self.buckets = [0] * (self.bucket_count + 1)
        if not self.group_slow:
            self.group_slow = [(edge, _per_group()) for edge in self.slo_edges]

    def observe(self, bucket: int, latency: float, outcome: str, group: int) -> None:
        self.requests += 1
        self.group_requests[group] += 1
        if outcome == Outcome.ERROR:
            self.errors += 1
            self.group_errors[group] += 1
        elif outcome == Outcome.BAD_REQUEST:
            self.bad_requests += 1
            self.group_bad_requests[group] += 1
        self.latency_sum += latency
        self.buckets[bucket] += 1
        for edge, slower in self.group_slow:  # edges ascend: stop at the first not passed
            if latency <= edge:
                break
            slower[group] += 1

    def add_labels(self, labelled: int, correct: int, group: int) -> None:
        self.labelled += labelled
        self.correct += correct
        self.group_labelled[group] += labelled
        self.group_correct[group] += correct

    def groups(self) -> GroupCounts:
        return GroupCounts(
            requests=tuple(self.group_requests),
            errors=tuple(self.group_errors),
            bad_requests=tuple(self.group_bad_requests),
            labelled=tuple(self.group_labelled),
            correct=tuple(self.group_correct),
            slow=tuple((edge, tuple(slower)) for edge, slower in self.group_slow),
        )

    def to_counters(
        self, edges: tuple[float, ...], slo_edges: tuple[float, ...]
    ) -> VersionCounters:
        cumulative: list[tuple[float, int]] = []
        running = 0
        for edge, count in zip((*edges, math.inf), self.buckets, strict=True):
            running += count
            cumulative.append((edge, running))
        at_edge = dict(cumulative)
        return VersionCounters(
            requests=self.requests,
            errors=self.errors,
            bad_requests=self.bad_requests,
            latency_buckets=tuple(cumulative),
            slow=tuple((edge, self.requests - at_edge[edge]) for edge in slo_edges),
            labelled=self.labelled,
            correct=self.correct,
            groups=self.groups(),
        )


@dataclass
class ShadowStats:
    """Mirrored requests for one candidate: both sides, and how often they agree."""

    baseline: VersionStats
    candidate: VersionStats
    pairs: int = 0
    disagreements: int = 0

    def to_counters(self, edges: tuple[float, ...], slo_edges: tuple[float, ...]) -> ShadowCounters:
        return ShadowCounters(
            pairs=self.pairs,
            disagreements=self.disagreements,
            baseline=self.baseline.to_counters(edges, slo_edges),
            candidate=self.candidate.to_counters(edges, slo_edges),
        )


@dataclass
class _Second:
    second: int
    requests: int
    errors: int
    latency_sum: float
    buckets: list[int]


@dataclass(frozen=True)
class RecentHealth:
    requests: int
    errors: int
    error_rate: float | None
    mean_latency: float | None
    p99_latency: float | None


class RecentWindow:
    """The last minute of one version's traffic in one-second slots."""

    def __init__(self, bucket_count: int) -> None:
        self._bucket_count = bucket_count
        self._slots: list[_Second | None] = [None] * WINDOW_SECONDS

    def observe(self, now: float, bucket: int, latency: float, is_error: bool) -> None:
        second = int(now)
        index = second % WINDOW_SECONDS
        slot = self._slots[index]
        if slot is None or slot.second != second:
            slot = _Second(second, 0, 0, 0.0, [0] * (self._bucket_count + 1))
            self._slots[index] = slot
        slot.requests += 1
        slot.errors += int(is_error)
        slot.latency_sum += latency
        slot.buckets[bucket] += 1

    def summary(self, now: float, edges: tuple[float, ...]) -> RecentHealth:
        oldest = int(now) - WINDOW_SECONDS + 1
        live = [s for s in self._slots if s is not None and s.second >= oldest]
        requests = sum(s.requests for s in live)
        if not requests:
            return RecentHealth(0, 0, None, None, None)
        errors = sum(s.errors for s in live)
        merged = [sum(column) for column in zip(*(s.buckets for s in live), strict=True)]
        return RecentHealth(
            requests=requests,
            errors=errors,
            error_rate=errors / requests,
            mean_latency=sum(s.latency_sum for s in live) / requests,
            p99_latency=quantile_from_buckets(merged, edges, 0.99),
        )


def quantile_from_buckets(buckets: list[int], edges: tuple[float, ...], q: float) -> float | None:
    """A quantile read off a (non-cumulative) histogram, interpolated inside its bucket."""
    total = sum(buckets)
    if not total:
        return None
    target = q * total
    running = 0
    for index, count in enumerate(buckets):
        if count and running + count >= target:
            if index >= len(edges):
                return edges[-1]
            lower = edges[index - 1] if index else 0.0
            return lower + (edges[index] - lower) * (target - running) / count
        running += count
    return edges[-1]


@dataclass(frozen=True)
class StatsView:
    """A consistent copy of every counter, taken under the lock.

    `latency_sums` is keyed by (traffic, version), traffic being "live" (routed),
    "forced" (version forced by the caller) or "shadow" (the candidate's side of
    mirrored requests).
    """

    taken_at: float
    started_at: float
    versions: dict[str, VersionCounters]
    forced: dict[str, VersionCounters]
    shadow: dict[str, ShadowCounters]
    latency_sums: dict[tuple[str, str], float]
    ignored_overrides: int
    shadow_dropped: int
    log_dropped: int


class GatewayStats:
    """All of the gateway's counters behind one lock (updates are a few integer adds)."""

    def __init__(
        self, slo_edges: tuple[float, ...], clock: Callable[[], float] = time.time
    ) -> None:
        self.slo_edges = tuple(sorted(set(slo_edges)))
        self.edges = fine_edges(self.slo_edges)
        self._clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._versions: dict[str, VersionStats] = {}
        self._forced: dict[str, VersionStats] = {}
        self._shadow: dict[str, ShadowStats] = {}
        self._recent: dict[str, RecentWindow] = {}
        self._ignored_overrides = 0
        self._shadow_dropped = 0
        self._log_dropped = 0

    def bucket_for(self, latency: float) -> int:
        return bisect.bisect_left(self.edges, latency)

    def _new(self) -> VersionStats:
        return VersionStats(bucket_count=len(self.edges), slo_edges=self.slo_edges)

    def record(self, version: str, role: str, latency: float, outcome: str, group: int) -> None:
        """One answered request; `role` is baseline, candidate or forced, `group` the hash
        group of its routing key."""
        bucket = self.bucket_for(latency)
        now = self._clock()
        with self._lock:
            table = self._forced if role == "forced" else self._versions
            stats = table.get(version)
            if stats is None:
                stats = table[version] = self._new()
            stats.observe(bucket, latency, outcome, group)
            if outcome != Outcome.BAD_REQUEST:
                self._recent_for(version).observe(now, bucket, latency, outcome == Outcome.ERROR)

    def record_shadow(
        self,
        candidate: str,
        baseline_side: tuple[float, str],
        candidate_side: tuple[float, str],
        agreed: bool | None,
        group: int,
    ) -> None:
        """One mirrored request; `agreed` is None when the pair did not both succeed."""
        now = self._clock()
        with self._lock:
            shadow = self._shadow_for(candidate)
            base_latency, base_outcome = baseline_side
            cand_latency, cand_outcome = candidate_side
            base_bucket = self.bucket_for(base_latency)
            shadow.baseline.observe(base_bucket, base_latency, base_outcome, group)
            cand_bucket = self.bucket_for(cand_latency)
            shadow.candidate.observe(cand_bucket, cand_latency, cand_outcome, group)
            if cand_outcome != Outcome.BAD_REQUEST:
                self._recent_for(candidate).observe(
                    now, cand_bucket, cand_latency, cand_outcome == Outcome.ERROR
                )
            if agreed is not None:
                shadow.pairs += 1
                shadow.disagreements += int(not agreed)

    def record_labels(
        self, version: str, role: str, labelled: int, correct: int, group: int
    ) -> None:
        with self._lock:
            table = self._forced if role == "forced" else self._versions
            stats = table.get(version)
            if stats is None:
                stats = table[version] = self._new()
            stats.add_labels(labelled, correct, group)

    def record_shadow_labels(
        self, candidate: str, side: str, labelled: int, correct: int, group: int
    ) -> None:
        with self._lock:
            shadow = self._shadow_for(candidate)
            stats = shadow.baseline if side == "baseline" else shadow.candidate
            stats.add_labels(labelled, correct, group)

    def count_ignored_override(self) -> None:
        with self._lock:
            self._ignored_overrides += 1

    def count_shadow_dropped(self) -> None:
        with self._lock:
            self._shadow_dropped += 1

    def set_log_dropped(self, dropped: int) -> None:
        with self._lock:
            self._log_dropped = dropped

    def _shadow_for(self, candidate: str) -> ShadowStats:
        shadow = self._shadow.get(candidate)
        if shadow is None:
            shadow = self._shadow[candidate] = ShadowStats(self._new(), self._new())
        return shadow

    def _recent_for(self, version: str) -> RecentWindow:
        window = self._recent.get(version)
        if window is None:
            window = self._recent[version] = RecentWindow(len(self.edges))
        return window

    def view(self) -> StatsView:
        with self._lock:
            return StatsView(
                taken_at=self._clock(),
                started_at=self.started_at,
                versions={v: self._counters(s) for v, s in self._versions.items()},
                forced={v: self._counters(s) for v, s in self._forced.items()},
                shadow={
                    v: s.to_counters(self.edges, self.slo_edges) for v, s in self._shadow.items()
                },
                latency_sums={
                    **{("live", v): s.latency_sum for v, s in self._versions.items()},
                    **{("forced", v): s.latency_sum for v, s in self._forced.items()},
                    **{("shadow", v): s.candidate.latency_sum for v, s in self._shadow.items()},
                },
                ignored_overrides=self._ignored_overrides,
                shadow_dropped=self._shadow_dropped,
                log_dropped=self._log_dropped,
            )

    def _counters(self, stats: VersionStats) -> VersionCounters:
        return stats.to_counters(self.edges, self.slo_edges)

    def recent(self, version: str) -> RecentHealth:
        with self._lock:
            window = self._recent.get(version)
            if window is None:
                return RecentHealth(0, 0, None, None, None)
            return window.summary(self._clock(), self.edges)
