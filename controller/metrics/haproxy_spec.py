"""The plan's `metrics: {type: haproxy, ...}` block, which builds a `HaproxyMetrics`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import field_validator

from gray.controller.errors import ConfigError
from gray.controller.metrics.haproxy import GATES_FED, HaproxyMetrics
from gray.controller.plan.models import FieldProblem, MetricsSpec, Timeout, gates_other_than
from gray.controller.routers.haproxy import DEFAULT_LEASE_MAP
from gray.controller.routers.haproxy_runtime import DEFAULT_TIMEOUT_SECONDS
from gray.controller.routers.haproxy_spec import HaproxyRouterSpec, runtime_address

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan


class HaproxyMetricsSpec(MetricsSpec):
    """Per-server counters from HAProxy's `show stat`. `runtime_api`, `backend` and
    `lease_map` default to the router's when the router is HAProxy too."""

    type: Literal["haproxy"] = "haproxy"
    runtime_api: str | None = None
    backend: str | None = None
    lease_map: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS

    @field_validator("runtime_api")
    @classmethod
    def _check_runtime_api(cls, value: str | None) -> str | None:
        return None if value is None else runtime_address(value)

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        router = plan.router if isinstance(plan.router, HaproxyRouterSpec) else None
        if (self.runtime_api or router) is None or (self.backend or router) is None:
            yield (
                ("metrics",),
                "type haproxy needs runtime_api and backend when the router is of "
                f"type {plan.router.type}",
            )

    def unfed_gates(self, plan: Plan) -> dict[str, str]:
        return gates_other_than(
            GATES_FED, "HAProxy counts answers by class and averages response times"
        )

    def build(self, plan: Plan) -> HaproxyMetrics:
        # A plan read by parse_plan was refused already; this guards other callers.
        for _, message in self.plan_problems(plan):
            raise ConfigError(message)
        router = plan.router if isinstance(plan.router, HaproxyRouterSpec) else None
        runtime_api = self.runtime_api or (router.runtime_api if router else None)
        backend = self.backend or (router.backend if router else None)
        assert runtime_api is not None and backend is not None  # plan_problems checked them
        lease_map = self.lease_map or (router.lease_map if router else DEFAULT_LEASE_MAP)
        return HaproxyMetrics(
            runtime_api,
            backend,
            lease_map=lease_map,
            slo_edges=plan.slo_edges(),
            timeout=self.timeout,
        )
