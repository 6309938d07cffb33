"""The MetricsSource for a SageMaker endpoint: per-variant counters from CloudWatch.

    metrics: {type: cloudwatch}        # endpoint, variants and region from the router

SageMaker publishes, per production variant (namespace `AWS/SageMaker`, dimensions
`EndpointName` and `VariantName`), one datapoint a minute of:

| CloudWatch metric      | statistic read            | gray's counter                       |
|------------------------|---------------------------|--------------------------------------|
| `Invocations`          | `Sum`                     | `requests`                           |
| `Invocation5XXErrors`  | `Sum`                     | `errors` (the model answered 5xx)    |
| `Invocation4XXErrors`  | `Sum`                     | `bad_requests` (the model answered 4xx) |
| `ModelLatency` (µs)    | `SampleCount`, `TC(:edge)` | `slow` per SLO edge, `latency_buckets` |

Latency. Percentiles (`p99`) cannot be added across minutes or turned into the counts
the gates test, so the source asks CloudWatch for trimmed counts instead: `TC(:X)` is
the number of requests whose latency was at most X µs in the period. The requests
slower than an SLO edge are `SampleCount − TC(:edge)`; trimmed counts at a ladder of
edges (`HISTOGRAM_EDGES`) make the cumulative histogram the `latency_distribution`
gate reads, asked for only when a plan has that gate (each edge is one more metric
in every GetMetricData call, which AWS bills per metric).

Cumulative counters from periods. CloudWatch answers per period (one minute), and a
period's value keeps growing for a while after it ends: SageMaker's datapoints arrive
a minute or more late. The source keeps, per variant, counter and period, the largest
value it has read (a ledger, like the Prometheus source's per series), and a counter
is the sum over the periods since the source's first look. Each look reads again the
periods that may still change (`delay` back from the previous look) and the new ones.
So counters never go down, a late datapoint is counted once when it arrives, and what
a look cannot see yet (the last minute or two) is counted at a later look.

What this means for a plan: a look more often than the period sees nothing new (the
plan's `interval` must be at least the period); a stage's counts lag its traffic by
CloudWatch's delay, and traffic in the minute a stage changes is counted to the minute,
not to the stage, so a dwell of several minutes is needed; labels and mirrored pairs
are not in CloudWatch, so the accuracy, wrong-prediction and disagreement gates are
refused at plan validation.

"No data" and "source broken" stay apart: a refused or unanswered call raises
MetricsError; a variant with no datapoints reads as zero counters (no data), and so
does one whose invocations are there but whose 5xx count is not (unknown, not "no
errors").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gray.controller.errors import MetricsError
from gray.controller.routers.sagemaker_record import VariantNames
from gray.controller.types import Pair, Snapshot, VersionCounters

NAMESPACE = "AWS/SageMaker"
DEFAULT_PERIOD_SECONDS = 60.0
DEFAULT_DELAY_SECONDS = 300.0
MICROSECONDS = 1e6  # ModelLatency's unit
# Latency edges (seconds) of the histogram the latency_distribution gate reads.
HISTOGRAM_EDGES: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
)  # fmt: skip
COUNTERS = {  # gray's counter: (CloudWatch metric, statistic)
    "requests": ("Invocations", "Sum"),
    "errors": ("Invocation5XXErrors", "Sum"),
    "bad_requests": ("Invocation4XXErrors", "Sum"),
}
LATENCY_COUNT = ("ModelLatency", "SampleCount")


@dataclass(frozen=True)
class Query:
    """One series read per variant: a metric and a statistic (`at_most`: a trimmed count
    of requests at most that many seconds)."""

    counter: str  # requests, errors, bad_requests, latency_count, or at_most
    metric: str
    stat: str
    at_most: float | None = None


def queries_for(latency_edges: Iterable[float]) -> tuple[Query, ...]:
    found = [Query(counter, *where) for counter, where in COUNTERS.items()]
    edges = sorted(set(latency_edges))
    if edges:
        found.append(Query("latency_count", *LATENCY_COUNT))
        found += [
            Query("at_most", "ModelLatency", f"TC(:{edge * MICROSECONDS:.10g})", edge)
            for edge in edges
        ]
    return tuple(found)


class CloudWatchMetrics:
    """Per-version counters of one SageMaker endpoint's variants, from CloudWatch."""

    def __init__(
        self,
        client: Any,
        endpoint: str,
        variants: VariantNames,
        *,
        slo_edges: Iterable[float] = (),
        histogram: bool = False,
        period: float = DEFAULT_PERIOD_SECONDS,
        delay: float = DEFAULT_DELAY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.variants = variants
        self.slo_edges = tuple(sorted({float(e) for e in slo_edges}))
        edges = set(self.slo_edges) | (set(HISTOGRAM_EDGES) if histogram else set())
        self.queries = queries_for(edges)
        self.period = period
        self.delay = delay
        self._clock = clock
        self._pair: Pair | None = None
        self._since: float | None = None  # the first period counted
        self._read_at: float | None = None
        # (variant, query index) -> {period start: the largest value read for it}
        self._ledger: dict[tuple[str, int], dict[float, float]] = {}

    def close(self) -> None:
        """Nothing to release: boto3 clients pool their own connections."""

    def snapshot(self, versions: Pair) -> Snapshot:
        now = self._clock()
        if versions != self._pair or self._since is None:
            self._pair, self._read_at = versions, None
            self._since = self._floor(now)
            self._ledger.clear()
        start = self._since
        if self._read_at is not None:
            start = max(start, self._floor(self._read_at - self.delay))
        end = self._floor(now) + self.period  # the running period too
        names = [self.variants.name_of(v) for v in (versions.baseline, versions.candidate)]
        self._read(names, start, end)
        self._read_at = now
        return Snapshot(
            taken_at=now,
            baseline=self._counters(names[0]),
            candidate=self._counters(names[1]),
        )

    def _floor(self, moment: float) -> float:
        return math.floor(moment / self.period) * self.period

    def _read(self, variants: list[str], start: float, end: float) -> None:
        requests, keys = [], []
        for variant in variants:
            for index, query in enumerate(self.queries):
                keys.append((variant, index))
                requests.append(self._metric_query(len(keys) - 1, variant, query))
        for result in self._get_metric_data(requests, start, end):
            key = keys[int(str(result["Id"]).removeprefix("q"))]
            periods = self._ledger.setdefault(key, {})
            stamps, values = result.get("Timestamps") or (), result.get("Values") or ()
            for stamp, value in zip(stamps, values, strict=True):
                at = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
                periods[at] = max(periods.get(at, 0.0), float(value))

    def _metric_query(self, number: int, variant: str, query: Query) -> dict[str, Any]:
        return {
            "Id": f"q{number}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": query.metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": self.endpoint},
                        {"Name": "VariantName", "Value": variant},
                    ],
                },
                "Period": int(self.period),
                "Stat": query.stat,
            },
            "ReturnData": True,
        }

    def _get_metric_data(
        self, queries: list[dict[str, Any]], start: float, end: float
    ) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        params: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
        }
        results: list[dict[str, Any]] = []
        try:
            while True:
                page = self.client.get_metric_data(**params)
                results += page.get("MetricDataResults") or []
                if not page.get("NextToken"):
                    return results
                params["NextToken"] = page["NextToken"]
        except ClientError as error:
            details = error.response.get("Error", {})
            raise MetricsError(
                f"CloudWatch refused GetMetricData for SageMaker endpoint {self.endpoint!r} "
                f"({details.get('Code', '?')}): {details.get('Message', '')}"
            ) from None
        except BotoCoreError as error:
            raise MetricsError(
                f"CloudWatch did not answer GetMetricData for SageMaker endpoint "
                f"{self.endpoint!r}: {error}"
            ) from None

    def _total(self, variant: str, index: int) -> float | None:
        periods = self._ledger.get((variant, index))
        return sum(periods.values()) if periods else None

    def _counters(self, variant: str) -> VersionCounters:
        totals = {i: self._total(variant, i) for i in range(len(self.queries))}
        by_counter = {q.counter: totals[i] for i, q in enumerate(self.queries) if not q.at_most}
        if not by_counter.get("requests"):
            return VersionCounters()  # nothing counted for this variant yet: no data
        if by_counter.get("errors") is None:
            return VersionCounters()  # invocations without a 5xx count: unknown, not zero
        requests = round(by_counter["requests"] or 0)
        measured = round(by_counter.get("latency_count") or 0)
        cumulative = [
            (edge, min(round(totals[i] or 0), measured))
            for i, q in enumerate(self.queries)
            if (edge := q.at_most) is not None
        ]
        buckets = (*cumulative, (math.inf, measured)) if cumulative else ()
        at_edge = dict(cumulative)
        return VersionCounters(
            requests=requests,
            errors=round(by_counter["errors"] or 0),
            bad_requests=round(by_counter.get("bad_requests") or 0),
            latency_buckets=buckets,
            slow=tuple((edge, measured - at_edge[edge]) for edge in self.slo_edges),
        )
