"""The plan's `metrics: {type: cloudwatch, ...}` block, which builds a `CloudWatchMetrics`.

Kept apart from the source so that `gray plan validate` reads and checks the block
without the AWS SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from gray.controller.errors import ConfigError
from gray.controller.gates.metrics import metric
from gray.controller.metrics.cloudwatch import DEFAULT_DELAY_SECONDS, DEFAULT_PERIOD_SECONDS
from gray.controller.plan.models import (
    Duration,
    FieldProblem,
    MetricsSpec,
    Timeout,
    gates_other_than,
)
from gray.controller.plan.units import format_duration
from gray.controller.routers.sagemaker_record import VariantNames
from gray.controller.routers.sagemaker_spec import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_VARIANT,
    SageMakerRouterSpec,
    endpoint_name,
    http_url,
    variant_template,
)

if TYPE_CHECKING:
    from gray.controller.metrics.cloudwatch import CloudWatchMetrics
    from gray.controller.plan.models import Plan

# The gates CloudWatch's SageMaker metrics can feed; labels and mirrored pairs are not there.
GATES_FED = ("error_rate", "bad_request_rate", "latency", "latency_distribution")


class CloudWatchMetricsSpec(MetricsSpec):
    """Per-variant SageMaker metrics from CloudWatch. `endpoint`, `variant`, `region` and
    `endpoint_url` default to the router's when the router is SageMaker too."""

    type: Literal["cloudwatch"] = "cloudwatch"
    endpoint: Annotated[str | None, AfterValidator(endpoint_name)] = None
    variant: Annotated[str | None, AfterValidator(variant_template)] = None
    region: str | None = Field(default=None, min_length=1)
    endpoint_url: Annotated[str | None, AfterValidator(http_url)] = None
    period: Duration = DEFAULT_PERIOD_SECONDS
    delay: Duration = DEFAULT_DELAY_SECONDS
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS

    @field_validator("period")
    @classmethod
    def _whole_minutes(cls, value: float) -> float:
        if value < 60 or value % 60:
            raise ValueError(
                "SageMaker publishes its metrics once a minute: give a whole number of "
                f"minutes (1m, 5m), got {format_duration(value)}"
            )
        return value

    def _router(self, plan: Plan) -> SageMakerRouterSpec | None:
        return plan.router if isinstance(plan.router, SageMakerRouterSpec) else None

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        router = self._router(plan)
        if self.endpoint is None and router is None:
            yield (
                ("metrics",),
                "type cloudwatch needs endpoint (the SageMaker endpoint's name) when the "
                f"router is of type {plan.router.type}",
            )
        if plan.interval < self.period:
            yield (
                ("interval",),
                f"CloudWatch counts SageMaker's traffic per {format_duration(self.period)}: a "
                f"look every {format_duration(plan.interval)} sees nothing new and costs a "
                f"GetMetricData call; make interval at least {format_duration(self.period)}",
            )
        for index, stage in enumerate(plan.stages):
            if stage.dwell < self.delay + self.period:
                yield (
                    ("stages", index, "dwell"),
                    f"CloudWatch shows SageMaker's traffic up to {format_duration(self.delay)} "
                    f"late, per {format_duration(self.period)}: a dwell of "
                    f"{format_duration(stage.dwell)} ends before the stage's traffic is "
                    f"counted; make it at least {format_duration(self.delay + self.period)}",
                )
            if stage.mirror > 0 and router is None:
                yield (
                    ("stages", index, "mirror"),
                    "CloudWatch holds no mirrored pairs or their answers: a shadow stage "
                    "cannot be judged from it",
                )

    def unfed_gates(self, plan: Plan) -> dict[str, str]:
        return gates_other_than(
            GATES_FED,
            "SageMaker publishes invocations, 4xx and 5xx answers and latency, not labels "
            "or mirrored pairs",
        )

    def build(self, plan: Plan) -> CloudWatchMetrics:
        # A plan read by parse_plan was refused already; this guards other callers.
        for _, message in self.plan_problems(plan):
            raise ConfigError(message)
        from gray.controller.aws import aws_client
        from gray.controller.metrics.cloudwatch import CloudWatchMetrics

        router = self._router(plan)
        endpoint = self.endpoint or (router.endpoint if router else None)
        assert endpoint is not None  # plan_problems checked it
        template = self.variant or (router.variant if router else DEFAULT_VARIANT)
        client = aws_client(
            "cloudwatch",
            region=self.region or (router.region if router else None),
            endpoint_url=self.endpoint_url or (router.endpoint_url if router else None),
            timeout=self.timeout,
        )
        gates = {g.metric for i in range(len(plan.stages)) for g in plan.stage_gates(i)}
        return CloudWatchMetrics(
            client,
            endpoint,
            VariantNames(template),
            slo_edges=plan.slo_edges(),
            histogram=any(metric(name).family == "shift" for name in gates),
            period=self.period,
            delay=self.delay,
        )
