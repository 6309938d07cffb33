"""The plan's `router: {type: kserve, ...}` block, which builds a `KServeRouter` whose
candidate revisions load each version's files from where the MLflow registry keeps them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from gray.controller.routers.kserve import KServePlatform, KServeRouter, inference_service
from gray.controller.routers.kubernetes_object import ObjectRef
from gray.controller.routers.kubernetes_spec import NAME, KubernetesRouterSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.registry import Registry


class RegistryStorageUris:
    """A version's storage URI: where the plan's registry keeps the version's files (its
    download URI, e.g. s3://bucket/1/abc/artifacts/model), the `storageUri` KServe
    loads. The registry is opened on the first look-up, not when the plan is read."""

    def __init__(self, registry_uri: str | None, model: str) -> None:
        self.registry_uri = registry_uri
        self.model = model
        self._registry: Registry | None = None

    def __call__(self, version: str) -> str:
        if self._registry is None:
            from gray.controller.registry import Registry, resolve_registry_uri

            self._registry = Registry(resolve_registry_uri(self.registry_uri, None))
        return self._registry.client.download_uri(self.model, version)


class KServeRouterSpec(KubernetesRouterSpec):
    """A KServe InferenceService whose predictor's canary gray drives: the candidate is
    its latest revision, loading the version's files from the registry."""

    type: Literal["kserve"] = "kserve"
    inference_service: str = Field(pattern=NAME)

    def object_ref(self) -> ObjectRef:
        return inference_service(self.namespace, self.inference_service)

    def platform(self) -> KServePlatform:
        return KServePlatform(str(self.object_ref()))

    def build(self) -> KServeRouter:
        """Without the plan: only versions gray already wrote to the object are known."""
        return KServeRouter(self.kubernetes_object(), **self.router_options())

    def build_for(self, plan: Plan) -> KServeRouter:
        locate = RegistryStorageUris(plan.registry.uri, plan.model.name)
        return KServeRouter(self.kubernetes_object(), locate, **self.router_options())
