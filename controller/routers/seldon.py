"""The Router for a Seldon Core 2 `Experiment`: the weights of its two candidate models and
its mirror.

Seldon serves each model version as a `Model` (a name and a storage URI); an Experiment
whose `default` is the baseline's model takes over that model's endpoint and splits its
requests between `candidates` by `weight`, and copies `mirror.percent` of them to the
mirror model. gray writes `candidates` (both models, always: Seldon requires the
default among them, so a side with no traffic keeps weight 0) and `mirror`, and leaves
`default` as the Experiment names it. Weights are relative; gray writes them out of
1000, so a share is exact to 0.1 %. The mirror's percent is whole.

Seldon splits each request at random, with no header or address rules; `problems`
refuses an audience.
"""

from __future__ import annotations

from typing import Any

from gray.controller.routers.base import bind_versions
from gray.controller.routers.kubernetes_object import (
    KubeObject,
    KubernetesObject,
    ObjectRef,
    Patch,
    RouteRecord,
)
from gray.controller.routers.kubernetes_router import (
    ObjectRouter,
    percent_problem,
)
from gray.controller.types import RouteSpec

WEIGHT_TOTAL = 1000


def experiment(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("Experiment", "mlops.seldon.io", "v1alpha1", "experiments", namespace, name)


class SeldonPlatform:
    """What a route is in an Experiment between the two roles' models."""

    def __init__(self, where: str, models: dict[str, str]) -> None:
        self.where = where
        self.roles = {"baseline": models["baseline"], "candidate": models["candidate"]}

    def problems(self, route: RouteSpec) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        weight = route.weight * WEIGHT_TOTAL
        if abs(weight - round(weight)) > 1e-6:
            found.append(
                (
                    "weight",
                    f"gray writes Seldon's weights out of {WEIGHT_TOTAL}; {route.weight:.3%} "
                    "is finer than 0.1 %",
                )
            )
        problem = percent_problem(route.mirror, "mirror percent", "Seldon")
        if problem:
            found.append(("mirror", problem))
        if not route.audience.is_everyone:
            found.append(
                (
                    "audience",
                    "a Seldon Experiment splits all of its default model's requests by "
                    "weight; it has no cidr or header rules. Remove the stage's audience, or "
                    "route with Istio",
                )
            )
        return found

    def places(self, route: RouteSpec, record: RouteRecord | None) -> dict[str, str]:
        return bind_versions(route, record.places if record else {}, self.roles)

    def spec_patch(self, obj: KubeObject, route: RouteSpec, places: dict[str, str]) -> Patch:
        baseline = places.get(route.baseline, self.roles["baseline"])
        other = next(m for m in self.roles.values() if m != baseline)
        candidate = places[route.candidate] if route.candidate is not None else other
        weight = round(route.weight * WEIGHT_TOTAL) if route.candidate is not None else 0
        mirror = (
            {"name": candidate, "percent": round(route.mirror * 100)}
            if route.candidate is not None and route.mirror > 0
            else None
        )
        return {
            "spec": {
                "candidates": [
                    {"name": baseline, "weight": WEIGHT_TOTAL - weight},
                    {"name": candidate, "weight": weight},
                ],
                "mirror": mirror,
            }
        }

    def route_of(self, obj: KubeObject, record: RouteRecord | None) -> RouteSpec:
        spec = obj.get("spec") or {}
        weights = {
            str(c.get("name")): int(c.get("weight") or 0) for c in spec.get("candidates") or []
        }
        total = sum(weights.values())
        places = record.places if record else {}
        baseline = record.route.baseline if record else ""
        candidate = record.route.candidate if record else None
        baseline_model = places.get(baseline, self.roles["baseline"])
        candidate_model = places.get(candidate or "") or next(
            m for m in self.roles.values() if m != baseline_model
        )
        share = weights.get(candidate_model, 0) / total if total else 0.0
        mirrored = spec.get("mirror") or {}
        mirror = (
            int(mirrored.get("percent") or 0) / 100
            if mirrored.get("name") == candidate_model
            else 0.0
        )
        if record is None:
            candidate = "" if share > 0 or mirror > 0 else None
        if candidate is None:
            return RouteSpec(baseline=baseline)
        return RouteSpec(baseline, candidate, share, mirror)

    def settled(self, obj: KubeObject) -> bool:
        """Seldon's operator has taken the spec in (its status's observedGeneration)."""
        generation = (obj.get("metadata") or {}).get("generation")
        observed = (obj.get("status") or {}).get("observedGeneration")
        return generation is None or observed is None or observed >= generation


class SeldonRouter(ObjectRouter):
    """Drives one Experiment between the models that serve the two versions."""

    platform: SeldonPlatform

    def __init__(self, obj: KubernetesObject, models: dict[str, str], **options: Any) -> None:
        super().__init__(SeldonPlatform(obj.where, models), obj, **options)

    def ensure_loaded(self, version: str) -> str | None:
        """Seldon loads a version as its own `Model`, which gray does not write: the
        Experiment must exist (the read says so). Seldon cannot say which preprocessor a
        model applies: None."""
        self.object.read()
        return None
