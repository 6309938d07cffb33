"""The Router for an Istio VirtualService: route weights between two destination subsets
of one host, so any model served on Kubernetes behind Istio (two Deployments whose pods
a DestinationRule tells apart by label) can be rolled out.

gray writes the VirtualService's `http` routes, and only them: one weighted route
(`gray-split`) with the candidate's share and, for a shadow stage, `mirror` and
`mirrorPercentage`. A stage with an audience gets a first route (`gray-audience`) whose
header `match` clauses select the audience and which carries the split; everything else
falls through to the baseline (`gray-default`), as gray's gateway routes an audience.
The settings of the route gray found there (timeouts, retries, rewrites) are kept on
each route it writes.

Istio splits each request at random (a DestinationRule's consistent hash picks a pod,
not a subset), its weights are whole percents, and a route matches headers but no
client address; `problems` refuses the rest.
"""

from __future__ import annotations

import itertools
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
from gray.controller.types import Audience, RouteSpec

AUDIENCE_ROUTE = "gray-audience"
SPLIT_ROUTE = "gray-split"
DEFAULT_ROUTE = "gray-default"
MAX_MATCH_CLAUSES = 16  # header rules with several values each multiply into clauses
# Keys of an http route that gray writes itself; the others are kept as found.
WRITTEN_KEYS = ("name", "match", "route", "mirror", "mirrorPercentage", "mirror_percent")


def virtual_service(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(
        "VirtualService", "networking.istio.io", "v1beta1", "virtualservices", namespace, name
    )


def match_clauses(audience: Audience) -> list[dict[str, Any]]:
    """Istio's `match` for an audience: every header rule must hold (one clause holds
    them all) and a rule with several values holds for any (one clause per choice)."""
    names = [name.lower() for name, _ in audience.headers]  # Istio's header keys are lower case
    choices = [values for _, values in audience.headers]
    return [
        {"headers": {name: {"exact": value} for name, value in zip(names, chosen, strict=True)}}
        for chosen in itertools.product(*choices)
    ]


def audience_of(clauses: list[dict[str, Any]]) -> Audience:
    """The audience `match_clauses` would have written these clauses for."""
    values: dict[str, list[str]] = {}
    for clause in clauses:
        for name, rule in (clause.get("headers") or {}).items():
            exact = (rule or {}).get("exact")
            if exact is not None and exact not in values.setdefault(name, []):
                values[name].append(exact)
    return Audience.from_dict({"headers": values})


class IstioPlatform:
    """What a route is in a VirtualService of `host` with subsets for the two roles."""

    def __init__(
        self, where: str, host: str, subsets: dict[str, str], port: int | None = None
    ) -> None:
        self.where = where
        self.host = host
        self.roles = {"baseline": subsets["baseline"], "candidate": subsets["candidate"]}
        self.port = port

    def problems(self, route: RouteSpec) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        problem = percent_problem(route.weight, "route weights", "Istio")
        if problem:
            found.append(("weight", problem))
        if route.audience.cidr:
            found.append(
                (
                    "audience",
                    "an Istio VirtualService matches requests by header, not by client "
                    "address; give the audience `headers` instead of `cidr`",
                )
            )
        clauses = 1
        for _, values in route.audience.headers:
            clauses *= len(values)
        if clauses > MAX_MATCH_CLAUSES:
            found.append(
                (
                    "audience",
                    f"the audience's header values make {clauses} Istio match clauses (one "
                    f"per combination); at most {MAX_MATCH_CLAUSES}",
                )
            )
        return found

    def places(self, route: RouteSpec, record: RouteRecord | None) -> dict[str, str]:
        return bind_versions(route, record.places if record else {}, self.roles)

    def destination(self, subset: str, weight: int | None = None) -> dict[str, Any]:
        target: dict[str, Any] = {"host": self.host, "subset": subset}
        if self.port is not None:
            target["port"] = {"number": self.port}
        return (
            {"destination": target} if weight is None else {"destination": target, "weight": weight}
        )

    def spec_patch(self, obj: KubeObject, route: RouteSpec, places: dict[str, str]) -> Patch:
        kept = {k: v for k, v in _default_route(obj).items() if k not in WRITTEN_KEYS}
        baseline = places.get(route.baseline, self.roles["baseline"])
        everyone = {**kept, "route": [self.destination(baseline, 100)]}
        if route.candidate is None:
            return {"spec": {"http": [{"name": SPLIT_ROUTE, **everyone}]}}
        candidate = places[route.candidate]
        percent = round(route.weight * 100)
        split: dict[str, Any] = {
            **kept,
            "route": [
                self.destination(baseline, 100 - percent),
                self.destination(candidate, percent),
            ],
        }
        if route.mirror > 0:
            split["mirror"] = self.destination(candidate)["destination"]
            split["mirrorPercentage"] = {"value": round(route.mirror * 100, 6)}
        if route.audience.is_everyone:
            return {"spec": {"http": [{"name": SPLIT_ROUTE, **split}]}}
        audience = {"name": AUDIENCE_ROUTE, "match": match_clauses(route.audience), **split}
        return {"spec": {"http": [audience, {"name": DEFAULT_ROUTE, **everyone}]}}

    def route_of(self, obj: KubeObject, record: RouteRecord | None) -> RouteSpec:
        http = _http(obj)
        split = next((r for r in http if r.get("match")), None) or _default_route(obj)
        weights = {
            ((d.get("destination") or {}).get("subset")): int(d.get("weight", 100) or 0)
            for d in split.get("route") or []
        }
        places = record.places if record else {}
        baseline = record.route.baseline if record else ""
        candidate = record.route.candidate if record else None
        baseline_subset = places.get(baseline, self.roles["baseline"])
        candidate_subset = places.get(candidate or "", None) or next(
            s for s in self.roles.values() if s != baseline_subset
        )
        mirror = 0.0
        mirrored = split.get("mirror") or {}
        if mirrored.get("subset") == candidate_subset:
            mirror = float((split.get("mirrorPercentage") or {}).get("value", 100.0)) / 100
        share = weights.get(candidate_subset, 0) / 100
        if record is None:
            candidate = "" if share > 0 or mirror > 0 else None
        if candidate is None:
            return RouteSpec(baseline=baseline)
        clauses = split.get("match") or []
        audience = audience_of(clauses)
        if record and clauses == match_clauses(record.route.audience):
            audience = record.route.audience  # the plan's header names, as written
        return RouteSpec(baseline, candidate, share, mirror, audience)

    def settled(self, obj: KubeObject) -> bool:
        return True  # Istio applies a VirtualService as written; it reports no rollout


def _http(obj: KubeObject) -> list[dict[str, Any]]:
    return list((obj.get("spec") or {}).get("http") or [])


def _default_route(obj: KubeObject) -> dict[str, Any]:
    """The route requests fall through to: the last one without a `match`."""
    unmatched = [r for r in _http(obj) if not r.get("match")]
    return unmatched[-1] if unmatched else {}


class IstioRouter(ObjectRouter):
    """Drives the weights of one VirtualService's two subsets of `host`."""

    platform: IstioPlatform

    def __init__(
        self,
        obj: KubernetesObject,
        host: str,
        subsets: dict[str, str],
        port: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(IstioPlatform(obj.where, host, subsets, port), obj, **options)

    def ensure_loaded(self, version: str) -> str | None:
        """Istio loads nothing: the VirtualService must exist (the read says so). Which
        model and preprocessor a subset's pods serve is theirs to say, not Istio's: None."""
        self.object.read()
        return None
