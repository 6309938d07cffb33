"""The MetricsSource for Prometheus: per-version counters read from the series it scraped.

    metrics: {type: prometheus, url: http://prometheus:9090, preset: gray,
              selector: {job: gray-gateway}}

The hard part is that Prometheus keeps one series per scraped target, and targets
restart (their counters fall back to zero), disappear (their series go stale), and
miss scrapes. The obvious queries are wrong there:

- `sum(counter)` drops when a target restarts or disappears, and jumps back when it
  returns: a look sees fewer requests than the last, the next one sees them twice.
- `sum(increase(counter[since_start]))` follows resets, but it extrapolates to the
  window's edges (fractional, and a few requests too many or too few), it never counts
  a series' first sample (a version's first requests on a replica that started after
  the window opened: prometheus-client creates a labelled series at its first
  increment), and two looks over growing windows can disagree by more than the
  traffic between them.

So this source never aggregates on the Prometheus side. It reads each selected series
raw, one per target and label set, and keeps a small ledger per series:

1. The first look (at time T0) reads every series' level,
   `last_over_time(selector[lookback])`, which also finds a target that is down at T0.
   The level is what the series counts from (like the gateway's "since it started").
2. Every later look reads the raw samples since the previous look, `selector[window]`
   (the window reaches `MARGIN_SECONDS` further back, for samples Prometheus wrote
   late), and walks each series' samples newer than the last one it counted: a rise
   adds the difference; a fall is a counter reset (the target restarted), and adds the
   new value, since the counter started again from zero. These are the rules of
   PromQL's own `increase`, without extrapolation. Where targets export their start
   time (the `gray` preset: `gray_start_time_seconds`), a sample whose scrape carries a
   new start time is a reset too: a restarted target whose counter climbed past its
   old value before its first scrape would otherwise look like a small rise.
3. A series first seen after T0 is new (a replica that started, a version's first
   request): it adds its first value, then walks as above.
4. A series that stops (its target went away) keeps what it counted; if it comes back
   the walk goes on from its last value, across the gap.

The totals are sums over series of what each counted, so they never go down, a reset
is never counted twice, and a scrape gap only delays counts (the samples either side
of the gap carry the difference). What no scraper can see is lost, as with any
Prometheus counter: requests a target answered after its last scrape before it died.
One limit: a target that was unscraped for longer than `lookback` before T0 and
returns without a restart has its whole count added at once when it returns.

"No data" and "source broken" stay apart, as for the gateway source: a Prometheus that
cannot be reached or refuses a query raises MetricsError; a version with no series
reads as zero counters, which the gates call no data. A version whose requests are
there but whose errors come from a metric of their own that has no series for it also
reads as zero counters (no data), never as a version without errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gray.controller.errors import ConfigError
from gray.controller.gates.metrics import metric
from gray.controller.metrics.gateway import slow_from_histogram
from gray.controller.metrics.promql import (
    Labels,
    Matcher,
    PrometheusClient,
    Selector,
    Series,
    matcher_from_value,
    parse_selector,
    regex_of,
)
from gray.controller.plan.models import Duration, MetricsSpec, Timeout
from gray.controller.types import Pair, ShadowCounters, Snapshot, VersionCounters

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan

MARGIN_SECONDS = 60.0  # how late a scraped sample may reach Prometheus's storage
DEFAULT_LOOKBACK_SECONDS = 3600.0
SCALARS = ("requests", "errors", "bad_requests", "labelled", "correct")
HISTOGRAM = "latency_buckets"
SLOW = "slow"


# --- where each counter is read -------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which series hold each counter of a Snapshot, by version.

    `live` and `shadow` map a VersionCounters field (`requests`, ..., `latency_buckets`,
    `slow`) to a selector; `shadow` is the candidate's side of mirrored requests.
    `latency_scale` is seconds per unit of the histogram's `le`; `slow_label` holds the
    SLO edge (seconds) of the `slow` series.
    """

    version_label: str
    live: Mapping[str, Selector]
    version_value: str = "{version}"  # the version label's value for a model version
    shadow: Mapping[str, Selector] = field(default_factory=dict)
    shadow_pairs: Selector | None = None
    shadow_disagreements: Selector | None = None
    latency_scale: float = 1.0
    slow_label: str = "slo_seconds"
    # A gauge each target exports with its process's start time (unix seconds): with it,
    # a restart is seen even when a counter climbed past its old value before a scrape.
    start_time: Selector | None = None

    def narrowed(self, *matchers: Matcher) -> Layout:
        """Every selector of this layout narrowed by `matchers` (the plan's `selector:`)."""

        def narrow(selectors: Mapping[str, Selector]) -> dict[str, Selector]:
            return {name: s.with_matchers(*matchers) for name, s in selectors.items()}

        return replace(
            self,
            live=narrow(self.live),
            shadow=narrow(self.shadow),
            shadow_pairs=self.shadow_pairs.with_matchers(*matchers) if self.shadow_pairs else None,
            shadow_disagreements=(
                self.shadow_disagreements.with_matchers(*matchers)
                if self.shadow_disagreements
                else None
            ),
            start_time=self.start_time.with_matchers(*matchers) if self.start_time else None,
        )


def _gray_side(traffic: str) -> dict[str, Selector]:
    by_traffic = (Matcher("traffic", "=", traffic),)
    names = {
        "requests": "gray_requests_total",
        "errors": "gray_errors_total",
        "bad_requests": "gray_bad_requests_total",
        "labelled": "gray_labelled_total",
        "correct": "gray_correct_total",
        HISTOGRAM: "gray_request_duration_seconds_bucket",
        SLOW: "gray_slow_requests_total",
    }
    return {counter: Selector(name, by_traffic) for counter, name in names.items()}


def _istio_live() -> dict[str, Selector]:
    # Istio reports every request twice, from the client's proxy and from the server's:
    # one reporter only, or every count doubles.
    destination = Matcher("reporter", "=", "destination")
    return {
        "requests": Selector("istio_requests_total", (destination,)),
        "errors": Selector(
            "istio_requests_total", (destination, Matcher("response_code", "=~", "5.."))
        ),
        "bad_requests": Selector(
            "istio_requests_total", (destination, Matcher("response_code", "=~", "4.."))
        ),
        HISTOGRAM: Selector("istio_request_duration_milliseconds_bucket", (destination,)),
    }


PRESETS: dict[str, Layout] = {
    # gray's own gateway /metrics. Its page has no series for the baseline's side of
    # mirrored requests, so a shadow stage compares the candidate's mirrored answers
    # with the baseline's live ones (the same users' requests, all of them).
    "gray": Layout(
        version_label="version",
        live=_gray_side("live"),
        shadow=_gray_side("shadow"),
        shadow_pairs=Selector("gray_shadow_pairs_total"),
        shadow_disagreements=Selector("gray_shadow_disagreements_total"),
        start_time=Selector("gray_start_time_seconds"),
    ),
    # Istio's standard metrics, by the serving workload's `version` label.
    "istio": Layout(version_label="destination_version", live=_istio_live(), latency_scale=0.001),
}
LATENCY_UNITS = {"s": 1.0, "ms": 0.001}


# --- the plan block ---------------------------------------------------------------------


def _selector_text(text: str) -> str:
    parse_selector(text)
    return text


SelectorText = Annotated[str, AfterValidator(_selector_text)]


class PrometheusQueries(BaseModel):
    """Explicit series selectors, one per counter; each replaces the preset's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: SelectorText | None = None
    errors: SelectorText | None = None
    bad_requests: SelectorText | None = None
    labelled: SelectorText | None = None
    correct: SelectorText | None = None
    latency_buckets: SelectorText | None = None

    def given(self) -> dict[str, Selector]:
        return {
            name: parse_selector(text)
            for name, text in self.model_dump().items()
            if text is not None
        }


class PrometheusMetricsSpec(MetricsSpec):
    """Counters from a Prometheus server: a `preset` (`gray`: the gateway's /metrics,
    `istio`: Istio's standard metrics), explicit `queries`, or both (a query replaces
    the preset's). `selector` narrows every query to the model (`{job: fraud-gateway}`,
    `{destination_service_name: fraud}`); `version_label` and `version_value` say how
    a series names a model version (`destination_version: "v{version}"`)."""

    type: Literal["prometheus"] = "prometheus"
    url: str
    preset: Literal["gray", "istio"] | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    queries: PrometheusQueries = Field(default_factory=PrometheusQueries)
    version_label: str | None = None
    version_value: str = "{version}"
    latency_unit: Literal["s", "ms"] | None = None
    timeout: Timeout = 10.0
    lookback: Duration = DEFAULT_LOOKBACK_SECONDS
    token: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError(f"expected an http:// or https:// address, got {value!r}")
        return value.rstrip("/")

    @field_validator("selector")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for label, text in value.items():
            matcher_from_value(label, text)
        return value

    @field_validator("version_value")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            rendered = value.format(version="1")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"use {{version}} and no other field: {error}") from None
        if rendered == value:
            raise ValueError('must contain {version}, as in "v{version}"')
        return value

    @model_validator(mode="after")
    def _counts_something(self) -> PrometheusMetricsSpec:
        given = self.queries.given()
        if self.preset is None and given and not {"requests", "errors"} <= set(given):
            raise ValueError(
                "queries without a preset must give both requests and errors "
                "(or name a preset: gray or istio)"
            )
        return self

    def layout(self) -> Layout:
        """The preset (gray when neither a preset nor queries are given) with the explicit
        queries, version label, latency unit and selector applied."""
        given = self.queries.given()
        preset_name = self.preset or (None if given else "gray")
        base = PRESETS[preset_name] if preset_name else Layout("version", {})
        layout = replace(
            base,
            live={**base.live, **given},
            version_label=self.version_label or base.version_label,
            version_value=self.version_value,
            latency_scale=(
                LATENCY_UNITS[self.latency_unit] if self.latency_unit else base.latency_scale
            ),
        )
        matchers = (matcher_from_value(label, text) for label, text in self.selector.items())
        return layout.narrowed(*matchers)

    def build(self, plan: Plan) -> PrometheusMetrics:
        layout = self.layout()
        _check_counted(layout, plan)
        return PrometheusMetrics(
            PrometheusClient(self.url, token=self.token, timeout=self.timeout),
            layout,
            slo_edges=plan.slo_edges(),
            lookback=self.lookback,
        )

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)


def _check_counted(layout: Layout, plan: Plan) -> None:
    """A shadow stage, or a gate reading a counter this layout has no series for, would
    wait for data that never comes: refuse the plan before any traffic moves."""
    shadow = [stage.name for stage in plan.stages if stage.is_shadow]
    if shadow and not layout.shadow:
        raise ConfigError(
            f"metrics: this Prometheus source counts no mirrored requests (only the gray "
            f"preset does), but stage {', '.join(shadow)} mirrors traffic to the candidate"
        )
    for index in range(len(plan.stages)):
        for gate in plan.stage_gates(index):
            unread = _unread(layout, metric(gate.metric).reads)
            if unread:
                raise ConfigError(
                    f"metrics: the {gate.metric} gate reads {', '.join(unread)}, which this "
                    "Prometheus source has no series for (give them under queries, or use "
                    "the gray preset)"
                )


def _unread(layout: Layout, reads: tuple[str, ...]) -> list[str]:
    """The counters in `reads` this layout cannot give (the gateway's extras aside)."""
    wanted = set(reads) - {"requests", "replayed_failures", "baseline_also_failed"}
    have = set(layout.live)
    if "slow" in wanted:  # counted at the edge, or read off the histogram
        wanted -= {"slow", HISTOGRAM}
        if not have & {SLOW, HISTOGRAM}:
            wanted.add(HISTOGRAM)
    if layout.shadow_pairs is not None:
        have.add("shadow.pairs")
    if layout.shadow_disagreements is not None:
        have.add("shadow.disagreements")
    return sorted(wanted - have)


# --- the ledger -----------------------------------------------------------------------


Target = tuple[str, str]  # a scraped target: its job and instance labels
# When each target's process started, by the time of the scrape that said so (a
# counter sample and the start time from the same scrape carry the same time).
StartTimes = Mapping[Target, Mapping[float, float]]


def target_of(labels: Labels) -> Target:
    named = dict(labels)
    return named.get("job", ""), named.get("instance", "")


def start_times(series: Iterable[Series]) -> dict[Target, dict[float, float]]:
    """The samples of a start-time gauge, by target and scrape time."""
    found: dict[Target, dict[float, float]] = {}
    for one in series:
        found.setdefault(target_of(one.labels), {}).update(one.samples)
    return found


@dataclass
class _Track:
    value: float  # the newest sample counted
    at: float  # its time; samples at or before it are already counted
    counted: float  # what this series adds to the totals
    started: float | None  # when the process that counted `value` started, if known


@dataclass
class SeriesLedger:
    """What each series counted, by query; totals that never go down (module docstring)."""

    _tracks: dict[tuple[str, Labels], _Track] = field(default_factory=dict)

    def clear(self) -> None:
        self._tracks.clear()

    def start(self, query: str, levels: Iterable[Series], starts: StartTimes | None = None) -> None:
        """Every series' level at the first look: what it counts from."""
        self._tracks = {key: t for key, t in self._tracks.items() if key[0] != query}
        for series in levels:
            at, value = series.samples[-1]
            started = _latest((starts or {}).get(target_of(series.labels)))
            self._tracks[(query, series.labels)] = _Track(value, at, value, started)

    def advance(
        self, query: str, recent: Iterable[Series], starts: StartTimes | None = None
    ) -> None:
        """Count each series' samples newer than the last it counted. A fall is a reset;
        so is a new start time of the series' target, which also catches a restarted
        target whose counter climbed past its old value before its first scrape."""
        for series in recent:
            key = (query, series.labels)
            target_starts = (starts or {}).get(target_of(series.labels)) or {}
            track = self._tracks.get(key)
            for at, value in series.samples:
                started = target_starts.get(at)
                if track is None:
                    # A series first seen now is new: its counter started from zero.
                    track = self._tracks[key] = _Track(value, at, value, started)
                elif at > track.at:
                    rise = value - track.value
                    restarted = None not in (started, track.started) and started != track.started
                    track.counted += value if restarted or rise < 0 else rise
                    track.value, track.at = value, at
                    track.started = started if started is not None else track.started

    def counted(self, query: str) -> list[tuple[Labels, float]]:
        return [(labels, t.counted) for (name, labels), t in self._tracks.items() if name == query]


# --- the source -----------------------------------------------------------------------


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
        seen = {c: bool(self._select(f"{side}:{c}", version)) for c in selectors}
        if not seen.get("requests"):
            return VersionCounters()  # this version has not been counted: no data
        errors = selectors.get("errors")
        own_metric = errors is not None and errors.metric != selectors["requests"].metric
        if own_metric and not seen["errors"]:
            # Errors counted by a metric of their own, which says nothing about this
            # version: unknown, so no data, never "no errors".
            return VersionCounters()
        scalars = {c: round(self._sum(f"{side}:{c}", version)) for c in SCALARS}
        buckets = self._histogram(f"{side}:{HISTOGRAM}", version, scalars["requests"])
        slow = {
            float(named[self.layout.slow_label]): round(value)
            for named, value in self._grouped(f"{side}:{SLOW}", version, self.layout.slow_label)
        }
        for edge in self.slo_edges:
            if edge not in slow:
                slow[edge] = slow_from_histogram(buckets, scalars["requests"], edge)
        return VersionCounters(latency_buckets=buckets, slow=tuple(sorted(slow.items())), **scalars)

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


def _latest(samples: Mapping[float, float] | None) -> float | None:
    return samples[max(samples)] if samples else None
