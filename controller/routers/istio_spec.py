"""The plan's `router: {type: istio, ...}` block, which builds an `IstioRouter`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gray.controller.routers.istio import IstioPlatform, IstioRouter, virtual_service
from gray.controller.routers.kubernetes_object import ObjectRef
from gray.controller.routers.kubernetes_spec import NAME, KubernetesRouterSpec, TwoNames


class IstioRouterSpec(KubernetesRouterSpec):
    """An Istio VirtualService whose http routes gray writes: weights between two subsets
    of `host` (a DestinationRule defines them), audiences as header matches, mirrors."""

    type: Literal["istio"] = "istio"
    virtual_service: str = Field(pattern=NAME)
    host: str = Field(min_length=1)
    subsets: TwoNames
    port: int | None = Field(default=None, ge=1, le=65535)

    def object_ref(self) -> ObjectRef:
        return virtual_service(self.namespace, self.virtual_service)

    def platform(self) -> IstioPlatform:
        return IstioPlatform(
            str(self.object_ref()), self.host, self.subsets.model_dump(), self.port
        )

    def build(self) -> IstioRouter:
        return IstioRouter(
            self.kubernetes_object(),
            self.host,
            self.subsets.model_dump(),
            self.port,
            **self.router_options(),
        )
