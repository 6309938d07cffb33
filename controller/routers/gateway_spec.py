"""The plan's `router: {type: gateway, ...}` block, which builds a `GatewayRouter`.

Kept apart from the adapter (`gateway.py`) so that `gray rollback`'s fast path can
import the adapter without pydantic.
"""

from __future__ import annotations

from typing import Literal

from gray.controller.plan.models import RouterSpec, Timeout
from gray.controller.routers.gateway import DEFAULT_TIMEOUT_SECONDS, GatewayRouter

DEFAULT_URL = "http://127.0.0.1:8080"


class GatewayRouterSpec(RouterSpec):
    """gray's own gateway (`gray gateway serve`), driven over its admin API."""

    type: Literal["gateway"] = "gateway"
    url: str = DEFAULT_URL
    token: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS

    def build(self) -> GatewayRouter:
        return GatewayRouter(self.url, self.token or None, timeout=self.timeout)

    def describe(self) -> str:
        return self.url

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)
