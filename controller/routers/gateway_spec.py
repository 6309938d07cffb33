"""The plan's `router: {type: gateway, ...}` block, which builds a `GatewayRouter` for one
gateway (`url`) or a `GatewayFleet` for several replicas (`urls`).

Kept apart from the adapters (`gateway.py`, `gateway_fleet.py`) so that `gray
rollback`'s fast path can import them without pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gray.controller.plan.models import RouterSpec, Timeout
from gray.controller.routers.gateway import DEFAULT_TIMEOUT_SECONDS, GatewayRouter
from gray.controller.routers.gateway_fleet import GatewayFleet, gateway_endpoint

DEFAULT_URL = "http://127.0.0.1:8080"


class GatewayRouterSpec(RouterSpec):
    """gray's own gateway (`gray gateway serve`), driven over its admin API: one process
    (`url`) or every replica of a fleet by its own address (`urls`), never both."""

    type: Literal["gateway"] = "gateway"
    url: str = DEFAULT_URL
    urls: list[str] | None = Field(default=None, min_length=1)
    token: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS

    @model_validator(mode="after")
    def _one_address_field(self) -> GatewayRouterSpec:
        if "url" in self.model_fields_set and self.urls is not None:
            raise ValueError("give url (one gateway) or urls (every replica of a fleet), not both")
        addresses = [u.rstrip("/") for u in self.urls or ()]
        repeated = sorted({u for u in addresses if addresses.count(u) > 1})
        if repeated:
            raise ValueError(f"urls names a replica twice: {', '.join(repeated)}")
        return self

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every replica's address (one for a single gateway)."""
        if self.urls is not None:
            return tuple(self.urls)
        return (self.url,)

    def build(self) -> GatewayRouter | GatewayFleet:
        return gateway_endpoint(self.addresses, self.token or None, self.timeout)

    def describe(self) -> str:
        return ", ".join(self.addresses)

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)
