"""The plan's `router: {type: seldon, ...}` block, which builds a `SeldonRouter`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gray.controller.routers.istio_spec import TwoNames
from gray.controller.routers.kubernetes_object import ObjectRef
from gray.controller.routers.kubernetes_spec import NAME, KubernetesRouterSpec
from gray.controller.routers.seldon import SeldonPlatform, SeldonRouter, experiment


class SeldonRouterSpec(KubernetesRouterSpec):
    """A Seldon Core 2 Experiment between two Models (`models`: the one serving the
    baseline, the one serving the candidate), by weight, with its mirror."""

    type: Literal["seldon"] = "seldon"
    experiment: str = Field(pattern=NAME)
    models: TwoNames

    def object_ref(self) -> ObjectRef:
        return experiment(self.namespace, self.experiment)

    def platform(self) -> SeldonPlatform:
        return SeldonPlatform(str(self.object_ref()), self.models.model_dump())

    def build(self) -> SeldonRouter:
        return SeldonRouter(
            self.kubernetes_object(), self.models.model_dump(), **self.router_options()
        )
