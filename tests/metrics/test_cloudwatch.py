"""`metrics: {type: cloudwatch}`: SageMaker's per-variant metrics read from CloudWatch
(moto's server, seeded with PutMetricData as SageMaker publishes them) into the
cumulative counters the gates judge, and the plans it cannot feed refused at validation.

moto computes Sum and SampleCount; the trimmed counts (`TC(:X)`) the latency gates
read are answered by tests/cloudwatch_standin.py, checked against botocore's model."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from gray.controller.errors import MetricsError, PlanError
from gray.controller.metrics.cloudwatch import HISTOGRAM_EDGES, CloudWatchMetrics
from gray.controller.plan.loading import parse_plan
from gray.controller.routers.sagemaker_record import VariantNames
from gray.controller.types import Pair
from tests.cloudwatch_standin import TrimmedCountCloudWatch, publish_minute
from tests.moto_server import MotoServer

PAIR = Pair("1", "2")
NAMES = VariantNames("fraud-v{version}")


class Minutes:
    """A clock the source reads, and the minutes the test publishes traffic in."""

    def __init__(self) -> None:
        self.now = math.floor(time.time() / 60) * 60 - 3600.0  # an hour ago, on a minute

    def at(self, minute: int) -> datetime:
        return datetime.fromtimestamp(self.now + 60 * minute + 5, UTC)


@pytest.fixture(scope="module")
def cloudwatch(moto_server: MotoServer) -> TrimmedCountCloudWatch:
    return TrimmedCountCloudWatch(moto_server.client("cloudwatch"))


def source(client: Any, endpoint: str, minutes: Minutes, **options: Any) -> CloudWatchMetrics:
    return CloudWatchMetrics(client, endpoint, NAMES, clock=lambda: minutes.now, **options)


def test_counters_add_up_minutes_and_count_a_late_datapoint_once(
    moto_server: MotoServer, cloudwatch: TrimmedCountCloudWatch
) -> None:
    endpoint, minutes = moto_server.unique("cw-counts"), Minutes()
    metrics = source(cloudwatch, endpoint, minutes)
    assert metrics.snapshot(PAIR).candidate.requests == 0  # nothing published: no data
    for minute in (0, 1):
        publish_minute(
            cloudwatch,
            endpoint,
            "fraud-v1",
            minutes.at(minute),
            invocations=900,
            errors_5xx=9,
            errors_4xx=3,
        )
        publish_minute(
            cloudwatch,
            endpoint,
            "fraud-v2",
            minutes.at(minute),
            invocations=100,
            errors_5xx=0,
            errors_4xx=1,
        )
    minutes.now += 120
    first = metrics.snapshot(PAIR)
    assert (first.baseline.requests, first.baseline.errors, first.baseline.bad_requests) == (
        1800,
        18,
        6,
    )
    assert (first.candidate.requests, first.candidate.errors, first.candidate.bad_requests) == (
        200,
        0,
        2,
    )
    # SageMaker's datapoints for minute 1 arrive late: CloudWatch adds them to the period.
    publish_minute(cloudwatch, endpoint, "fraud-v2", minutes.at(1), invocations=50, errors_5xx=5)
    minutes.now += 60
    second = metrics.snapshot(PAIR)
    assert (second.candidate.requests, second.candidate.errors) == (250, 5)
    minutes.now += 60
    assert metrics.snapshot(PAIR).candidate == second.candidate  # counted once, never again


def test_slow_requests_and_the_histogram_come_from_trimmed_counts(
    moto_server: MotoServer, cloudwatch: TrimmedCountCloudWatch
) -> None:
    endpoint, minutes = moto_server.unique("cw-latency"), Minutes()
    metrics = source(cloudwatch, endpoint, minutes, slo_edges=[0.25], histogram=True)
    metrics.snapshot(PAIR)
    publish_minute(
        cloudwatch,
        endpoint,
        "fraud-v1",
        minutes.at(0),
        invocations=100,
        latencies_us={20_000: 95, 400_000: 5},
    )
    publish_minute(
        cloudwatch,
        endpoint,
        "fraud-v2",
        minutes.at(0),
        invocations=100,
        latencies_us={20_000: 70, 250_000: 10, 900_000: 20},
    )
    minutes.now += 60
    snapshot = metrics.snapshot(PAIR)
    assert snapshot.baseline.slow == ((0.25, 5),)
    assert snapshot.candidate.slow == ((0.25, 20),)  # 250 ms exactly is not slower than 250 ms
    buckets = dict(snapshot.candidate.latency_buckets)
    assert set(buckets) == {*HISTOGRAM_EDGES, 0.25, math.inf}
    assert (buckets[0.02], buckets[0.2], buckets[0.3], buckets[1.0], buckets[math.inf]) == (
        70,
        70,
        80,
        100,
        100,
    )


def test_a_variant_without_its_5xx_count_is_no_data_not_error_free(
    moto_server: MotoServer, cloudwatch: TrimmedCountCloudWatch
) -> None:
    endpoint, minutes = moto_server.unique("cw-partial"), Minutes()
    metrics = source(cloudwatch, endpoint, minutes)
    metrics.snapshot(PAIR)
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": "fraud-v2"},
    ]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": dimensions,
                "Timestamp": minutes.at(0),
                "Value": 40,
            }
        ],
    )
    minutes.now += 60
    assert metrics.snapshot(PAIR).candidate.requests == 0


def test_a_new_pair_counts_from_its_own_first_look(
    moto_server: MotoServer, cloudwatch: TrimmedCountCloudWatch
) -> None:
    endpoint, minutes = moto_server.unique("cw-pair"), Minutes()
    metrics = source(cloudwatch, endpoint, minutes)
    metrics.snapshot(PAIR)
    publish_minute(cloudwatch, endpoint, "fraud-v2", minutes.at(0), invocations=10)
    minutes.now += 120
    assert metrics.snapshot(PAIR).candidate.requests == 10
    # The promoted candidate is the next rollout's baseline: counted from that rollout's start.
    assert metrics.snapshot(Pair("2", "3")).baseline.requests == 0


def test_an_unreachable_cloudwatch_is_a_metrics_error(moto_server: MotoServer) -> None:
    from gray.gateway.testing import free_port

    closed = moto_server.client(
        "cloudwatch",
        url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=0.5,
        retries={"total_max_attempts": 1},
    )
    with pytest.raises(MetricsError, match="did not answer GetMetricData"):
        source(closed, "fraud", Minutes()).snapshot(PAIR)


# --- the plan block ----------------------------------------------------------------------

PLAN = """\
name: fraud
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
interval: {interval}
gates:
  - {gate}
stages:
  - {{weight: 5%, dwell: {dwell}}}
router: {router}
metrics: {metrics}
"""
SAGEMAKER = '{type: sagemaker, endpoint: fraud, variant: "fraud-v{version}", region: eu-west-1}'


def plan_text(**changes: str) -> str:
    fields = {
        "interval": "1m",
        "dwell": "30m",
        "gate": "{metric: error_rate, max_increase: 10%}",
        "router": SAGEMAKER,
        "metrics": "{type: cloudwatch}",
    }
    return PLAN.format(**{**fields, **changes})


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    return [problem.render() for problem in caught.value.problems]


def test_a_cloudwatch_block_takes_the_sagemaker_router_s_endpoint() -> None:
    plan = parse_plan(plan_text(), "p.yaml")
    assert plan.metrics.type == "cloudwatch"
    assert list(plan.metrics.plan_problems(plan)) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"gate": "{metric: accuracy, max_decrease: 1%}"},
            "p.yaml:5:14: gates[0].metric: metrics type cloudwatch cannot feed the accuracy "
            "gate: SageMaker publishes invocations, 4xx and 5xx answers and latency, not labels or "
            "mirrored pairs; it feeds error_rate, bad_request_rate, latency, latency_distribution",
        ),
        (
            {"interval": "30s"},
            "p.yaml:3:11: interval: CloudWatch counts SageMaker's traffic per 1m: a look every "
            "30s sees nothing new and costs a GetMetricData call; make interval at least 1m",
        ),
        (
            {"dwell": "5m"},
            "p.yaml:7:25: stages[0].dwell: CloudWatch shows SageMaker's traffic up to 5m late, "
            "per 1m: a dwell of 5m ends before the stage's traffic is counted; make it at "
            "least 6m",
        ),
        (
            {"router": "{type: gateway}"},
            "p.yaml:9:10: metrics: type cloudwatch needs endpoint (the SageMaker endpoint's "
            "name) when the router is of type gateway",
        ),
        (
            {"metrics": "{type: cloudwatch, period: 90s}"},
            "p.yaml:9:37: metrics.period: SageMaker publishes its metrics once a minute: give a "
            "whole number of minutes (1m, 5m), got 1m30s",
        ),
    ],
)
def test_what_cloudwatch_cannot_feed_is_refused_naming_the_field(
    changes: dict[str, str], expected: str
) -> None:
    assert problems(plan_text(**changes)) == [expected]
