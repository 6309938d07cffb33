"""CloudWatch for the tests: moto's server, plus a stand-in for the one statistic it lacks.

moto's GetMetricData computes `Sum`, `SampleCount`, `Average`, `Minimum` and `Maximum`
only; asked for a trimmed count (`TC(:250000)`, the number of values at most 250000)
it fails with HTTP 500. `TrimmedCountCloudWatch` is a boto3 CloudWatch client on the
moto server that answers those queries itself, from the `ModelLatency` values the test
put (it keeps a copy of what `put_metric_data` sends), and passes every other query to
moto. So that the stand-in cannot drift from the real API, every request is checked
against botocore's service model for CloudWatch (the checks boto3 itself makes before
sending) and every answer it assembles is checked against the model's output shape.
moto stores a latency value sent with a count of n as n datapoints; the stand-in sends
moto the values' statistic set instead (same SampleCount and Sum) and keeps the values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.validate import ParamValidator

TRIMMED_COUNT = re.compile(r"^TC\(:(?P<upper>[0-9.eE+-]+)\)$")


@dataclass(frozen=True)
class _Values:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    at: float
    values: tuple[float, ...]
    counts: tuple[float, ...]


@dataclass
class TrimmedCountCloudWatch:
    """A CloudWatch client (`client`, on the moto server) that also answers `TC(:X)`."""

    client: Any
    _kept: list[_Values] = field(default_factory=list)

    def put_metric_data(self, **params: Any) -> dict[str, Any]:
        self._check("PutMetricData", params, output=False)
        # moto stores a value with a count of n as n datapoints (60,000 for a busy minute);
        # it gets their statistic set instead, which answers SampleCount and Sum the same.
        data = [_as_statistic_set(datum) for datum in params["MetricData"]]
        answer = self.client.put_metric_data(**{**params, "MetricData": data})
        for datum in params["MetricData"]:
            values = datum.get("Values") or ([datum["Value"]] if "Value" in datum else [])
            counts = datum.get("Counts") or [1.0] * len(values)
            self._kept.append(
                _Values(
                    params["Namespace"],
                    datum["MetricName"],
                    frozenset((d["Name"], d["Value"]) for d in datum.get("Dimensions") or ()),
                    _seconds(datum["Timestamp"]),
                    tuple(map(float, values)),
                    tuple(map(float, counts)),
                )
            )
        return dict(answer)

    def get_metric_data(self, **params: Any) -> dict[str, Any]:
        self._check("GetMetricData", params, output=False)
        queries = params["MetricDataQueries"]
        ours = [q for q in queries if TRIMMED_COUNT.match(q["MetricStat"]["Stat"])]
        theirs = [q for q in queries if q not in ours]
        results: dict[str, dict[str, Any]] = {}
        if theirs:
            answer = self.client.get_metric_data(**{**params, "MetricDataQueries": theirs})
            results |= {r["Id"]: r for r in answer["MetricDataResults"]}
        start, end = _seconds(params["StartTime"]), _seconds(params["EndTime"])
        results |= {q["Id"]: self._trimmed_count(q, start, end) for q in ours}
        answer = {
            "MetricDataResults": [results[q["Id"]] for q in queries],
            "Messages": [],
        }
        self._check("GetMetricData", answer, output=True)
        return answer

    def _trimmed_count(self, query: dict[str, Any], start: float, end: float) -> dict[str, Any]:
        stat = query["MetricStat"]
        metric, period = stat["Metric"], int(stat["Period"])
        upper = float(TRIMMED_COUNT.match(stat["Stat"])["upper"])  # type: ignore[index]
        dimensions = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions") or ())
        per_period: dict[float, float] = {}
        for kept in self._kept:
            if (kept.namespace, kept.name, kept.dimensions) != (
                metric["Namespace"],
                metric["MetricName"],
                dimensions,
            ) or not start <= kept.at < end:
                continue
            slot = start + math.floor((kept.at - start) / period) * period
            inside = sum(c for v, c in zip(kept.values, kept.counts, strict=True) if v <= upper)
            per_period[slot] = per_period.get(slot, 0.0) + inside
        slots = sorted(per_period)
        return {
            "Id": query["Id"],
            "Label": metric["MetricName"],
            "Timestamps": [datetime.fromtimestamp(s).astimezone() for s in slots],
            "Values": [per_period[s] for s in slots],
            "StatusCode": "Complete",
        }

    def _check(self, operation: str, value: dict[str, Any], *, output: bool) -> None:
        model = self.client.meta.service_model.operation_model(operation)
        shape = model.output_shape if output else model.input_shape
        report = ParamValidator().validate(value, shape)
        if report.has_errors():
            raise AssertionError(
                f"the stand-in's {operation} {'answer' if output else 'request'} is not what "
                f"botocore's service model allows: {report.generate_report()}"
            )


def _as_statistic_set(datum: dict[str, Any]) -> dict[str, Any]:
    if not datum.get("Values"):
        return datum
    values = [float(v) for v in datum["Values"]]
    counts = [float(c) for c in datum.get("Counts") or [1.0] * len(values)]
    plain = {k: v for k, v in datum.items() if k not in ("Values", "Counts")}
    plain["StatisticValues"] = {
        "SampleCount": sum(counts),
        "Sum": sum(v * c for v, c in zip(values, counts, strict=True)),
        "Minimum": min(values),
        "Maximum": max(values),
    }
    return plain


def _seconds(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def variant_dimensions(endpoint: str, variant: str) -> Sequence[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def publish_minute(
    cloudwatch: Any, endpoint: str, variant: str, at: datetime, **traffic: Any
) -> None:
    """One minute of a variant's traffic, published as SageMaker publishes it."""
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker", MetricData=minute_data(endpoint, variant, at, **traffic)
    )


def minute_data(
    endpoint: str,
    variant: str,
    at: datetime,
    *,
    invocations: int,
    errors_5xx: int = 0,
    errors_4xx: int = 0,
    latencies_us: dict[float, int] | None = None,
) -> list[dict[str, Any]]:
    """A variant's minute as SageMaker's datapoints: the three invocation counts, and the
    requests' latencies (µs) as values with counts."""
    dimensions = variant_dimensions(endpoint, variant)
    data: list[dict[str, Any]] = [
        {"MetricName": name, "Dimensions": dimensions, "Timestamp": at, "Value": value}
        for name, value in (
            ("Invocations", invocations),
            ("Invocation5XXErrors", errors_5xx),
            ("Invocation4XXErrors", errors_4xx),
        )
    ]
    if latencies_us:
        data.append(
            {
                "MetricName": "ModelLatency",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Values": list(latencies_us),
                "Counts": list(latencies_us.values()),
                "Unit": "Microseconds",
            }
        )
    return data
