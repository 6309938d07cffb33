"""The plan's `router: {type: haproxy, ...}` block, which builds a `HaproxyRouter`.

Kept apart from the adapter (`haproxy.py`) so that importing the adapter needs no
pydantic, like the gateway's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from gray.controller.errors import ConfigError, RouteNotSupportedError
from gray.controller.plan.models import FieldProblem, RouterSpec, Timeout
from gray.controller.routers.haproxy import DEFAULT_LEASE_MAP, HaproxyRouter
from gray.controller.routers.haproxy_record import weights_for
from gray.controller.routers.haproxy_runtime import DEFAULT_TIMEOUT_SECONDS, RuntimeAddress
from gray.controller.types import RouteSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan


def runtime_address(value: str) -> str:
    """A plan's runtime API address, checked (`unix:///path` or `tcp://host:port`)."""
    try:
        RuntimeAddress.parse(value)
    except ConfigError as error:
        raise ValueError(error.message) from None
    return value


class HaproxyServers(BaseModel):
    """The backend's servers: the one serving the baseline and the one for the candidate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str
    candidate: str

    @model_validator(mode="after")
    def _two_servers(self) -> HaproxyServers:
        if self.baseline == self.candidate:
            raise ValueError(f"baseline and candidate name one server ({self.baseline!r})")
        return self


class HaproxyRouterSpec(RouterSpec):
    """One HAProxy backend whose two servers serve the two versions, driven by weights
    through HAProxy's runtime API (see docs/haproxy.md for the config it needs)."""

    type: Literal["haproxy"] = "haproxy"
    # HAProxy's servers are opaque: it cannot say which version or preprocessor one serves.
    shows_served_version: ClassVar[bool] = False
    shows_preprocessor: ClassVar[bool] = False
    runtime_api: str
    backend: str
    servers: HaproxyServers
    lease_map: str = DEFAULT_LEASE_MAP
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS

    _check_runtime_api = field_validator("runtime_api")(runtime_address)

    def build(self) -> HaproxyRouter:
        return HaproxyRouter(
            self.runtime_api,
            self.backend,
            self.servers.model_dump(),
            lease_map=self.lease_map,
            timeout=self.timeout,
        )

    def describe(self) -> str:
        return f"HAProxy backend {self.backend} at {self.runtime_api}"

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        """Each stage HAProxy's weights cannot carry (a mirror, an audience, a share finer
        than its weights), by the very rule its route writes apply."""
        for index, stage in enumerate(plan.stages):
            route = RouteSpec(
                "baseline", "candidate", stage.weight, stage.mirror, stage.audience.to_audience()
            )
            try:
                weights_for(route)
            except RouteNotSupportedError as refused:
                field = (
                    "mirror"
                    if stage.mirror
                    else "weight"
                    if route.audience.is_everyone
                    else "audience"
                )
                yield ("stages", index, field), refused.message
