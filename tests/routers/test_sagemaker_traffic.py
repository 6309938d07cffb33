"""A whole rollout through a SageMaker endpoint (moto's server), judged on CloudWatch.

Fake traffic follows the split SageMaker itself reports: every minute of the fake
clock, the endpoint's variants' `CurrentWeight`s divide 60,000 requests, and each
variant's minute is published to CloudWatch as SageMaker publishes it (invocations,
4xx, 5xx, latencies). The plan's router is built from its `router:` block; the
CloudWatch source is the plan's, on the test's clock and the trimmed-count stand-in
(tests/cloudwatch_standin.py: moto has no `TC` statistic). The real loop and runner
drive it: a good candidate is promoted (its variant takes every request), a bad one
rolled back by its gate.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gray.controller.journal import Journal, LocalJournal
from gray.controller.loop import begin
from gray.controller.metrics.cloudwatch import CloudWatchMetrics
from gray.controller.metrics.cloudwatch_spec import CloudWatchMetricsSpec
from gray.controller.notify import Notifier
from gray.controller.plan.loading import parse_plan
from gray.controller.routers import build_router
from gray.controller.runner import Runner
from gray.controller.state import Phase
from tests.cloudwatch_standin import TrimmedCountCloudWatch, minute_data
from tests.fakes import FakeRegistry, rollout_state
from tests.moto_server import CREDENTIALS, MotoServer

PLAN = """\
name: sagemaker-rollout
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
router: {{type: sagemaker, endpoint: {endpoint}, variant: "fraud-v{{version}}",
          region: eu-west-1, endpoint_url: "{url}"}}
metrics: {{type: cloudwatch, delay: 1m}}
interval: 1m
gates:
  - {{metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%, min_samples: 200}}
  - {{metric: latency, slo: 250ms, max_increase: 20%, max_increase_abs: 1%, min_samples: 200}}
stages:
  - {{weight: 10%, dwell: 2m}}
  - {{weight: 100%, dwell: 2m}}
promote: {{alias: champion, keep_previous_as: previous-champion}}
"""
REQUESTS_PER_MINUTE = 60_000


class TrafficClock:
    """The runner's clock; each minute it passes is a minute of traffic, split as the
    endpoint reports its weights and published to CloudWatch."""

    def __init__(
        self, sagemaker: Any, cloudwatch: Any, endpoint: str, error_rates: dict[str, float]
    ) -> None:
        self.t = math.floor(time.time() / 60) * 60 - 3600.0  # an hour ago, on a minute
        self.published_until = self.t
        self.sagemaker, self.cloudwatch = sagemaker, cloudwatch
        self.endpoint, self.error_rates = endpoint, error_rates

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
        while self.published_until + 60 <= self.t:
            self._publish(self.published_until)
            self.published_until += 60

    def _publish(self, minute: float) -> None:
        described = self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        weights = {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in described["ProductionVariants"]}  # fmt: skip
        total, data = sum(weights.values()), []
        for variant, weight in weights.items():
            requests = round(REQUESTS_PER_MINUTE * weight / total)
            if requests == 0:
                continue
            rate, slow = self.error_rates[variant.removeprefix("fraud-v")], round(requests * 0.02)
            data += minute_data(
                self.endpoint,
                variant,
                datetime.fromtimestamp(minute + 5, UTC),
                invocations=requests,
                errors_5xx=round(requests * rate),
                latencies_us={30_000.0: requests - slow, 400_000.0: slow},
            )
        self.cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=data)


def run_rollout(
    moto_server: MotoServer, tmp_path: Path, candidate_error_rate: float
) -> tuple[int, Phase, dict[str, float]]:
    endpoint = moto_server.sagemaker_endpoint("fraud-rollout", ("1", "2"), "fraud-v{version}")
    text = PLAN.format(endpoint=endpoint, url=moto_server.url)
    plan = parse_plan(text, "sagemaker.yaml", environ={})
    sagemaker = moto_server.client("sagemaker")
    cloudwatch = TrimmedCountCloudWatch(moto_server.client("cloudwatch"))
    clock = TrafficClock(sagemaker, cloudwatch, endpoint, {"1": 0.01, "2": candidate_error_rate})
    spec = plan.metrics
    assert isinstance(spec, CloudWatchMetricsSpec)
    metrics = CloudWatchMetrics(
        cloudwatch,
        endpoint,
        plan.router.variant_names,  # type: ignore[attr-defined]
        slo_edges=plan.slo_edges(),
        period=spec.period,
        delay=spec.delay,
        clock=clock.now,
    )
    router = build_router(plan.router)
    journal = Journal(LocalJournal(tmp_path / "home"))
    runner = Runner(plan, router, metrics, FakeRegistry(), journal, Notifier(()), clock)
    state = rollout_state(f"{endpoint}-0001", plan_name=plan.name, started_at=clock.now())
    journal.create(state, text)
    result = runner.run(begin(plan, state))
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    weights = {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in described["ProductionVariants"]}  # fmt: skip
    return result.exit_code, result.state.phase, weights


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan's router builds its own boto3 client: dummy credentials for moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])


@pytest.mark.usefixtures("aws_credentials")
def test_a_good_candidate_is_promoted_on_its_cloudwatch_counts(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    code, phase, weights = run_rollout(moto_server, tmp_path, candidate_error_rate=0.01)
    assert (code, phase) == (0, Phase.PROMOTED)
    assert weights == {"fraud-v1": 0.0, "fraud-v2": 1.0}


@pytest.mark.usefixtures("aws_credentials")
def test_a_bad_candidate_is_rolled_back_on_its_cloudwatch_counts(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    code, phase, weights = run_rollout(moto_server, tmp_path, candidate_error_rate=0.2)
    assert (code, phase) == (1, Phase.ROLLED_BACK)
    assert weights == {"fraud-v1": 1.0, "fraud-v2": 0.0}
