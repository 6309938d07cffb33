"""The plan's `router: {type: sagemaker, ...}` block, which builds a `SageMakerRouter`.

Kept apart from the adapter so that `gray plan validate` reads and checks the block
without the AWS SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from gray.controller.errors import RouteNotSupportedError
from gray.controller.plan.models import Duration, FieldProblem, RouterSpec, Timeout
from gray.controller.routers.sagemaker_record import VARIANT_NAME, VariantNames, weights_for
from gray.controller.types import RouteSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.routers.sagemaker import SageMakerRouter

DEFAULT_VARIANT = "v{version}"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_UPDATE_TIMEOUT_SECONDS = 600.0


def endpoint_name(value: str | None) -> str | None:
    # Endpoint and variant names share SageMaker's pattern.
    if value is not None and not VARIANT_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a SageMaker endpoint name (letters, digits and hyphens, at "
            "most 63, starting with a letter or digit)"
        )
    return value


def variant_template(value: str | None) -> str | None:
    if value is not None:
        VariantNames(value)  # raises ValueError with the reason
    return value


def http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// address, got {value!r}")
    return value


class SageMakerRouterSpec(RouterSpec):
    """One SageMaker real-time endpoint whose production variants serve the versions, one
    variant per version named by `variant` (`fraud-v{version}`), split by weight."""

    type: Literal["sagemaker"] = "sagemaker"
    # A variant's container is opaque: SageMaker cannot say which preprocessor it applies.
    # The version each variant serves is in its name.
    shows_preprocessor: ClassVar[bool] = False
    endpoint: Annotated[str, AfterValidator(endpoint_name)]
    variant: Annotated[str, AfterValidator(variant_template)] = DEFAULT_VARIANT
    region: str | None = Field(default=None, min_length=1)
    endpoint_url: Annotated[str | None, AfterValidator(http_url)] = None
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS
    update_timeout: Duration = DEFAULT_UPDATE_TIMEOUT_SECONDS

    @property
    def variant_names(self) -> VariantNames:
        return VariantNames(self.variant)

    def build(self) -> SageMakerRouter:
        from gray.controller.aws import aws_client
        from gray.controller.routers.sagemaker import SageMakerRouter

        client = aws_client(
            "sagemaker", region=self.region, endpoint_url=self.endpoint_url, timeout=self.timeout
        )
        return SageMakerRouter(
            client, self.endpoint, self.variant_names, update_timeout=self.update_timeout
        )

    def describe(self) -> str:
        region = f" in {self.region}" if self.region else ""
        return f"SageMaker endpoint {self.endpoint}{region}"

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        """Each stage SageMaker's variant weights cannot carry (a mirror, an audience), by
        the very rule its writes apply. Weights are floats: any share is carried."""
        for index, stage in enumerate(plan.stages):
            route = RouteSpec("1", "2", stage.weight, stage.mirror, stage.audience.to_audience())
            try:
                weights_for(route, self.variant_names)
            except RouteNotSupportedError as refused:
                field = "mirror" if stage.mirror else "audience"
                yield ("stages", index, field), refused.message
