"""The plan's `metrics: {type: gateway, ...}` block, which builds a `GatewayMetrics`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from gray.controller.errors import ConfigError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.plan.models import MetricsSpec
from gray.controller.routers.gateway_spec import GatewayRouterSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan


class GatewayMetricsSpec(MetricsSpec):
    """The counters of gray's own gateway (`GET /admin/stats`). `url` and `token` default
    to the router's when the router is a gateway too: usually the same process."""

    type: Literal["gateway"] = "gateway"
    url: str | None = None
    token: str | None = None

    def build(self, plan: Plan) -> GatewayMetrics:
        router = plan.router if isinstance(plan.router, GatewayRouterSpec) else None
        url = self.url or (router.url if router else None)
        if url is None:
            raise ConfigError(
                f"metrics: type gateway needs a url when the router is of type {plan.router.type}"
            )
        token = self.token if self.token is not None else (router.token if router else None)
        return GatewayMetrics(url, token or None, slo_edges=plan.slo_edges())

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)
