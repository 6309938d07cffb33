"""What the plan blocks of the Kubernetes routers (`kserve`, `istio`, `seldon`) share: the
object's namespace, how to reach the API server, and plan validation by the very rule
the router's writes apply (`Platform.problems`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gray.controller.plan.models import Duration, FieldProblem, RouterSpec, Timeout
from gray.controller.routers.kubernetes_object import (
    DEFAULT_TIMEOUT_SECONDS,
    Connection,
    KubernetesObject,
    ObjectRef,
)
from gray.controller.types import RouteSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.routers.kubernetes_router import Platform

NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # a Kubernetes object or namespace name


class TwoNames(BaseModel):
    """The names serving the baseline and the candidate (two subsets, two models)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str = Field(min_length=1)
    candidate: str = Field(min_length=1)

    @model_validator(mode="after")
    def _two(self) -> TwoNames:
        if self.baseline == self.candidate:
            raise ValueError(f"baseline and candidate name one place ({self.baseline!r})")
        return self


class KubernetesRouterSpec(RouterSpec):
    """A router over one Kubernetes object: where it is and how to reach the API server
    (`server` + `token`, else `kubeconfig`/`context`, else the pod's service account)."""

    # Kubernetes objects name URIs, subsets and models, not model versions or
    # preprocessors: gray's record says which version it put where, nothing more.
    shows_served_version: ClassVar[bool] = False
    shows_preprocessor: ClassVar[bool] = False
    namespace: str = Field(default="default", pattern=NAME)
    server: str | None = None
    token: str | None = None
    ca_file: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS
    # How long a write may take to show in the object's status before it is unverified.
    settle_timeout: Duration = 120.0

    def object_ref(self) -> ObjectRef:
        raise NotImplementedError

    def platform(self) -> Platform:
        """The platform's rules, for plan validation (no connection is made)."""
        raise NotImplementedError

    def connection(self) -> Connection:
        return Connection(
            self.server, self.token, self.ca_file, self.kubeconfig, self.context, self.timeout
        )

    def kubernetes_object(self) -> KubernetesObject:
        return KubernetesObject(self.object_ref(), self.connection())

    def router_options(self) -> dict[str, Any]:
        return {"settle_timeout": self.settle_timeout}

    def describe(self) -> str:
        return f"{self.object_ref()} at {self.server or 'the cluster'}"

    def secrets(self) -> tuple[str | None, ...]:
        return (self.token,)

    def plan_problems(self, plan: Plan) -> Iterator[FieldProblem]:
        """Each stage the platform cannot carry, at the field that asks for it."""
        platform = self.platform()
        for index, stage in enumerate(plan.stages):
            route = RouteSpec(
                "baseline", "candidate", stage.weight, stage.mirror, stage.audience.to_audience()
            )
            for field, message in platform.problems(route):
                yield ("stages", index, field), message
