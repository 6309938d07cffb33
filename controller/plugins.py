"""The types a plan's `router:` and `metrics:` blocks may name, found by their `type`.

Each type is one pydantic model (a `RouterSpec` or `MetricsSpec` subclass, next to
its adapter) whose `build` makes the adapter. gray's own types are listed here;
any installed package adds one with an entry point, without touching gray:

    [project.entry-points."gray.routers"]
    linkerd = "gray_linkerd.router:LinkerdRouterSpec"

This module imports nothing heavy: a type's module is imported only when a plan
names it, and the installed packages' entry points are read only for a type gray
does not ship (or to list every known type in a plan problem).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AdapterTypes:
    """The types of one plan block: gray's own (`builtin`, name → `module:attribute`),
    then the entry points of `group`. A built-in name wins over an entry point's."""

    block: str  # the plan field: `router` or `metrics`
    group: str  # the entry-point group other packages declare their types in
    builtin: dict[str, str]
    _entry_points: dict[str, str] | None = field(default=None, repr=False)

    def names(self) -> tuple[str, ...]:
        """Every known type: gray's own first, then the installed packages', sorted."""
        extra = sorted(set(self._declared()) - set(self.builtin))
        return (*self.builtin, *extra)

    def load(self, name: str) -> Any | None:
        """The spec class of type `name` (None: no such type). Importing the class is the
        first time its module (and the package that declares it) is loaded."""
        target = self.builtin.get(name) or self._declared().get(name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module

    def forget(self) -> None:
        """Read the entry points again at the next look-up (after installing a package)."""
        self._entry_points = None

    def _declared(self) -> dict[str, str]:
        if self._entry_points is None:
            from importlib.metadata import entry_points

            self._entry_points = {
                point.name: point.value for point in entry_points(group=self.group)
            }
        return self._entry_points


ROUTER_TYPES = AdapterTypes(
    "router",
    "gray.routers",
    {
        "gateway": "gray.controller.routers.gateway_spec:GatewayRouterSpec",
        "haproxy": "gray.controller.routers.haproxy_spec:HaproxyRouterSpec",
        "kserve": "gray.controller.routers.kserve_spec:KServeRouterSpec",
        "istio": "gray.controller.routers.istio_spec:IstioRouterSpec",
        "seldon": "gray.controller.routers.seldon_spec:SeldonRouterSpec",
        "sagemaker": "gray.controller.routers.sagemaker_spec:SageMakerRouterSpec",
    },
)
METRICS_TYPES = AdapterTypes(
    "metrics",
    "gray.metrics",
    {
        "gateway": "gray.controller.metrics.gateway_spec:GatewayMetricsSpec",
        "haproxy": "gray.controller.metrics.haproxy_spec:HaproxyMetricsSpec",
        "prometheus": "gray.controller.metrics.prometheus:PrometheusMetricsSpec",
        "cloudwatch": "gray.controller.metrics.cloudwatch_spec:CloudWatchMetricsSpec",
    },
)
