"""The plan's `metrics: {type: gateway, ...}` block, which builds a `GatewayMetrics` for one
gateway or a `GatewayFleetMetrics` summing every replica of a fleet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from gray.controller.errors import ConfigError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.metrics.gateway_fleet import GatewayFleetMetrics
from gray.controller.plan.models import MetricsSpec
from gray.controller.routers.gateway_spec import GatewayRouterSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan


class GatewayMetricsSpec(MetricsSpec):
    """The counters of gray's own gateway (`GET /admin/stats`), of one process (`url`) or
    summed over every replica of a fleet (`urls`). The addresses and `token` default to the
    router's when the router is a gateway too: usually the same processes."""

    type: Literal["gateway"] = "gateway"
    url: str | None = None
    urls: list[str] | None = Field(default=None, min_length=1)
    token: str | None = None

    @model_validator(mode="after")
    def _one_address_field(self) -> GatewayMetricsSpec:
        if self.url is not None and self.urls is not None:
            raise ValueError("give url (one gateway) or urls (every replica of a fleet), not both")
        return self

    def build(self, plan: Plan) -> GatewayMetrics | GatewayFleetMetrics:
        router = plan.router if isinstance(plan.router, GatewayRouterSpec) else None
        urls = tuple(self.urls) if self.urls else (self.url,) if self.url else None
        if urls is None and router is not None:
            urls = router.addresses
        if urls is None:
            raise ConfigError(
                f"metrics: type gateway needs a url when the router is of type {plan.router.type}"
            )
        token = self.token if self.token is not None else (router.token if router else None)
        replicas = [GatewayMetrics(u, token or None, slo_edges=plan.slo_edges()) for u in urls]
        return replicas[0] if len(replicas) == 1 else GatewayFleetMetrics(replicas)

    def counts_groups(self) -> bool:
        return True  # the gateway counts every version per hash group of the routing key

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)
