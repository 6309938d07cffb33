"""`PrometheusMetrics`: per-version Snapshots from the series a `Layout` names, read
through a `PrometheusClient` and kept in a `SeriesLedger`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gray.controller.metrics.gateway import slow_from_histogram
from gray.controller.metrics.prometheus.layout import HISTOGRAM, SCALARS, SLOW, Layout
from gray.controller.metrics.prometheus.ledger import SeriesLedger, start_times
from gray.controller.metrics.prometheus.promql import Matcher, PrometheusClient, Selector, regex_of
from gray.controller.types import (
    ROUTING_GROUPS,
    GroupCounts,
    Pair,
    ShadowCounters,
    Snapshot,
    VersionCounters,
)

MARGIN_SECONDS = 60.0  # how late a scraped sample may reach Prometheus's storage
DEFAULT_LOOKBACK_SECONDS = 3600.0


class PrometheusMetrics:
    """Per-version counters from Prometheus, in the shape the gateway source gives them."""

    def __init__(
        self,
        client: PrometheusClient,
        layout: Layout,
        slo_edges: Iterable[float] = (),
        *,
        lookback: float = DEFAULT_LOOKBACK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.layout = layout
        self.slo_edges = tuple(sorted({float(edge) for edge in slo_edges}))
        self._lookback = lookback
        self._clock = clock
        self._ledger = SeriesLedger()
        self._pair: Pair | None = None
        self._read_at: float | None = None  # the last look that read every query

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PrometheusMetrics:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def snapshot(self, versions: Pair) -> Snapshot:
        now = self._clock()
        if versions != self._pair:
            self._pair, self._read_at = versions, None
            self._ledger.clear()
        queries = self._queries(versions)
        started = self.layout.start_time
        if self._read_at is None:
            levels = start_times(
                self.client.last_values(started, self._lookback, now) if started else ()
            )
            for name, selector in queries.items():
                found = self.client.last_values(selector, self._lookback, now)
                self._ledger.start(name, found, levels)
        else:
            window = max(now - self._read_at, 0.0) + MARGIN_SECONDS
            starts = start_times(self.client.raw_samples(started, window, now) if started else ())
            for name, selector in queries.items():
                self._ledger.advance(name, self.client.raw_samples(selector, window, now), starts)
        # Only a look that read every query moves the window on: after a failed one the
        # next reads from the same place (what was counted is skipped by time).
        self._read_at = now
        return self._to_snapshot(versions, now)

    def _labels_of(self, pair: Pair) -> dict[str, str]:
        """The version label's value for each role."""
        return {
            "baseline": self.layout.version_value.format(version=pair.baseline),
            "candidate": self.layout.version_value.format(version=pair.candidate),
        }

    def _queries(self, pair: Pair) -> dict[str, Selector]:
        names = self._labels_of(pair)
        both = Matcher(self.layout.version_label, "=~", regex_of(tuple(names.values())))
        only_candidate = Matcher(self.layout.version_label, "=", names["candidate"])
        queries = {f"live:{c}": s.with_matchers(both) for c, s in self.layout.live.items()}
        queries |= {
            f"shadow:{c}": s.with_matchers(only_candidate) for c, s in self.layout.shadow.items()
        }
        queries |= {
            f"live-groups:{c}": s.with_matchers(both) for c, s in self.layout.groups.items()
        }
        queries |= {
            f"shadow-groups:{c}": s.with_matchers(only_candidate)
            for c, s in self.layout.shadow_groups.items()
        }
        for name, selector in (
            ("pairs", self.layout.shadow_pairs),
            ("disagreements", self.layout.shadow_disagreements),
        ):
            if selector is not None:
                queries[name] = selector.with_matchers(only_candidate)
        return queries

    def _to_snapshot(self, pair: Pair, now: float) -> Snapshot:
        names = self._labels_of(pair)
        baseline = self._counters("live", names["baseline"])
        shadow_candidate = self._counters("shadow", names["candidate"])
        return Snapshot(
            taken_at=now,
            baseline=baseline,
            candidate=self._counters("live", names["candidate"]),
            shadow=ShadowCounters(
                pairs=round(self._sum("pairs", names["candidate"])),
                disagreements=round(self._sum("disagreements", names["candidate"])),
                baseline=baseline if self.layout.shadow else VersionCounters(),
                candidate=shadow_candidate,
            ),
        )

    def _sum(self, query: str, version: str) -> float:
        return sum(value for _, value in self._select(query, version))

    def _select(self, query: str, version: str) -> list[tuple[dict[str, str], float]]:
        """The series of `query` that count `version`, with what each counted."""
        rows = []
        for labels, value in self._ledger.counted(query):
            named = dict(labels)
            if named.get(self.layout.version_label) == version:
                rows.append((named, value))
        return rows

    def _counters(self, side: str, version: str) -> VersionCounters:
        selectors = self.layout.live if side == "live" else self.layout.shadow
        if not selectors:
            return VersionCounters()
        # No data: zero counters, split into zero groups where the series have groups.
        nothing = VersionCounters(groups=GroupCounts() if self._group_selectors(side) else None)
        seen = {c: bool(self._select(f"{side}:{c}", version)) for c in selectors}
        if not seen.get("requests"):
            return nothing  # this version has not been counted: no data
        errors = selectors.get("errors")
        own_metric = errors is not None and errors.metric != selectors["requests"].metric
        if own_metric and not seen["errors"]:
            # Errors counted by a metric of their own, which says nothing about this
            # version: unknown, so no data, never "no errors".
            return nothing
        scalars = {c: round(self._sum(f"{side}:{c}", version)) for c in SCALARS}
        buckets = self._histogram(f"{side}:{HISTOGRAM}", version, scalars["requests"])
        slow = {
            float(named[self.layout.slow_label]): round(value)
            for named, value in self._grouped(f"{side}:{SLOW}", version, self.layout.slow_label)
        }
        groups = self._groups(side, version, scalars["requests"], counted_edges=tuple(slow))
        for edge in self.slo_edges:
            if edge not in slow:
                slow[edge] = slow_from_histogram(buckets, scalars["requests"], edge)
        return VersionCounters(
            latency_buckets=buckets, slow=tuple(sorted(slow.items())), groups=groups, **scalars
        )

    def _group_selectors(self, side: str) -> dict[str, Selector]:
        return dict(self.layout.groups if side == "live" else self.layout.shadow_groups)

    def _groups(
        self, side: str, version: str, requests: int, counted_edges: tuple[float, ...]
    ) -> GroupCounts | None:
        """A counted version's per-group counts, summed over targets; None when the layout
        has no group series, or a version with requests has none in any group (a gateway
        too old to split by group). A group's series appears at its first count, so a
        latency edge the targets count (`counted_edges`) with no slow group is all zeros."""
        selectors = self._group_selectors(side)
        if "requests" not in selectors:
            return None
        if requests and not self._select(f"{side}-groups:requests", version):
            return None
        label = self.layout.group_label
        series = {
            counter: self._per_group(self._select(f"{side}-groups:{counter}", version), label)
            for counter in SCALARS
        }
        by_edge: dict[float, list[tuple[dict[str, str], float]]] = {e: [] for e in counted_edges}
        for named, value in self._select(f"{side}-groups:{SLOW}", version):
            if self.layout.slow_label in named:
                edge = float(named[self.layout.slow_label])
                by_edge.setdefault(edge, []).append((named, value))
        slow = sorted((edge, self._per_group(rows, label)) for edge, rows in by_edge.items())
        return GroupCounts(slow=tuple(slow), **series)

    @staticmethod
    def _per_group(rows: list[tuple[dict[str, str], float]], label: str) -> tuple[int, ...]:
        """Values summed by group (a series whose group is not 0..ROUTING_GROUPS-1 is not
        one of gray's groups and is skipped)."""
        totals = [0.0] * ROUTING_GROUPS
        for named, value in rows:
            group = named.get(label, "")
            if group.isdigit() and int(group) < ROUTING_GROUPS:
                totals[int(group)] += value
        return tuple(round(total) for total in totals)

    def _grouped(self, query: str, version: str, label: str) -> list[tuple[dict[str, str], float]]:
        """The query's series for `version` summed by the value of `label`."""
        totals: dict[str, float] = {}
        for named, value in self._select(query, version):
            if label in named:
                totals[named[label]] = totals.get(named[label], 0.0) + value
        return [({label: key}, value) for key, value in totals.items()]

    def _histogram(self, query: str, version: str, requests: int) -> tuple[tuple[float, int], ...]:
        """Cumulative buckets in seconds, summed over series, ascending, ending at +Inf."""
        by_edge: dict[float, float] = {}
        for named, value in self._grouped(query, version, "le"):
            edge = float(named["le"])
            edge = edge if edge == float("inf") else edge * self.layout.latency_scale
            by_edge[edge] = by_edge.get(edge, 0.0) + value
        if not by_edge:
            return ()
        buckets, running = [], 0
        for edge in sorted(by_edge):
            # Replicas scraped at different moments can disagree by a request or two
            # between edges; a cumulative histogram never falls.
            running = max(running, round(by_edge[edge]))
            buckets.append((edge, running))
        if buckets[-1][0] != float("inf"):
            buckets.append((float("inf"), max(running, requests)))
        return tuple(buckets)
