"""The KServe, Istio and Seldon routers against the Kubernetes API stand-in
(tests/kubernetes_api_standin.py), as `RouterHarness`es for the router contract and for
their own tests. Each harness reads the platform's own account of its split from the
stand-in's objects, never through the router."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gray.controller.routers.istio import IstioRouter, virtual_service
from gray.controller.routers.kserve import KServeRouter, inference_service
from gray.controller.routers.kubernetes_object import Connection, KubernetesObject, ObjectRef
from gray.controller.routers.seldon import SeldonRouter, experiment
from gray.controller.types import Audience, Pair, RouteSpec
from tests.kubernetes_api_standin import KubernetesApiStandIn, example
from tests.routers.contract import ProxiedHarness
from tests.routers.fault_proxy import FaultProxy

NAMESPACE = "models"
PAIR = Pair("1", "2")
# KServe's documented first model and its canary (kserve docs: canary rollout).
STORAGE_URIS = {
    "1": "gs://kfserving-examples/models/sklearn/1.0/model",
    "2": "gs://kfserving-examples/models/sklearn/1.0/model-2",
}
SUBSETS = {"baseline": "v1", "candidate": "v2"}  # Bookinfo's reviews subsets
MODELS = {"baseline": "iris", "candidate": "iris2"}  # Seldon's documented experiment models


class KubernetesHarness(ProxiedHarness):
    """What the three harnesses share: the stand-in behind a FaultProxy, one object."""

    pair = PAIR
    unreachable_within_seconds = 3.0
    ref: ObjectRef
    plan_block: str

    def __init__(self, proxy: FaultProxy, standin: KubernetesApiStandIn) -> None:
        super().__init__(proxy)
        self.standin = standin
        self.set_up()

    def set_up(self) -> None:
        """The harness's object and its plan block."""
        raise NotImplementedError

    @property
    def path(self) -> str:
        return self.ref.path

    def obj(self) -> KubernetesObject:
        connection = Connection(server=self.proxy.url, timeout=2.0)
        return KubernetesObject(self.ref, connection, first_pause=0.01)

    def connection_fields(self) -> str:
        return f'server: "{self.proxy.url}", namespace: {NAMESPACE}'

    def reset(self) -> int:
        self.standin.reset_faults()
        self.standin.put(self.starting_object(), NAMESPACE)
        return 0

    def starting_object(self) -> dict[str, Any]:
        raise NotImplementedError

    def current(self) -> dict[str, Any]:
        return self.standin.get(self.path)


class KServeHarness(KubernetesHarness):
    def set_up(self) -> None:
        self.ref = inference_service(NAMESPACE, "sklearn-iris")
        self.plan_block = (
            f"{{type: kserve, {self.connection_fields()}, inference_service: sklearn-iris}}"
        )

    def starting_object(self) -> dict[str, Any]:
        return example("kserve-sklearn-iris.yaml")

    def routes(self) -> Sequence[RouteSpec]:
        return [RouteSpec("1", "2", weight=0.1), RouteSpec("1", "2", weight=0.5)]

    def router(self) -> KServeRouter:
        return KServeRouter(self.obj(), STORAGE_URIS.__getitem__, settle_timeout=2.0)

    def carried(self) -> RouteSpec:
        """KServe's own split: the rolled-out revision is the baseline, the latest (when
        it is another) the candidate with its percent, each named by its storage URI."""
        version = {uri: v for v, uri in STORAGE_URIS.items()}
        revisions = self.standin.revisions[self.path]
        latest = version[next(reversed(revisions.uris.values()))]
        assert revisions.rolled_out is not None
        rolled_out = version[revisions.uris[revisions.rolled_out]]
        if latest == rolled_out:
            return RouteSpec(baseline=latest)
        split = self.standin.kserve_split(self.path)
        return RouteSpec(rolled_out, latest, weight=split.get(STORAGE_URIS[latest], 0) / 100)


class IstioHarness(KubernetesHarness):
    def set_up(self) -> None:
        self.ref = virtual_service(NAMESPACE, "reviews")
        self.plan_block = (
            f"{{type: istio, {self.connection_fields()}, virtual_service: reviews, "
            "host: reviews, subsets: {baseline: v1, candidate: v2}}"
        )

    def starting_object(self) -> dict[str, Any]:
        return example("istio-reviews-v1.yaml")

    def routes(self) -> Sequence[RouteSpec]:
        team = Audience.from_dict({"headers": {"X-Team": ["ml", "data"]}})
        return [
            RouteSpec("1", "2", weight=0.1),
            RouteSpec("1", "2", weight=0.3, mirror=0.25, audience=team),
        ]

    def router(self) -> IstioRouter:
        return IstioRouter(self.obj(), "reviews", SUBSETS, settle_timeout=2.0)

    def carried(self) -> RouteSpec:
        """Istio's own split: the route with a header match (else the last one), its
        first destination the baseline's subset."""
        version = {"v1": "1", "v2": "2"}
        http = self.current()["spec"]["http"]
        split = next((r for r in http if r.get("match")), http[-1])
        targets = [(d["destination"]["subset"], d.get("weight", 100)) for d in split["route"]]
        baseline = version[targets[0][0]]
        if len(targets) == 1:
            return RouteSpec(baseline=baseline)
        candidate, weight = version[targets[1][0]], targets[1][1] / 100
        mirror = 0.0
        if split.get("mirror", {}).get("subset") == targets[1][0]:
            mirror = split["mirrorPercentage"]["value"] / 100
        headers: dict[str, list[str]] = {}
        for clause in split.get("match") or []:
            for name, rule in clause["headers"].items():
                headers.setdefault(name, []).append(rule["exact"])
        audience = Audience.from_dict({"headers": headers})
        # Istio's header names are lower case; the plan's may not be.
        wanted = self.routes()[1].audience
        if {k.lower(): sorted(v) for k, v in wanted.headers} == {
            k: sorted(v) for k, v in audience.headers
        }:
            audience = wanted
        return RouteSpec(baseline, candidate, weight, mirror, audience)


class SeldonHarness(KubernetesHarness):
    def set_up(self) -> None:
        self.ref = experiment(NAMESPACE, "experiment-sample")
        self.plan_block = (
            f"{{type: seldon, {self.connection_fields()}, experiment: experiment-sample, "
            "models: {baseline: iris, candidate: iris2}}"
        )

    def starting_object(self) -> dict[str, Any]:
        """The documented experiment, with the default model taking all its traffic."""
        obj = example("seldon-experiment-sample.yaml")
        obj["spec"]["candidates"] = [{"name": "iris", "weight": 100}]
        return obj

    def routes(self) -> Sequence[RouteSpec]:
        return [RouteSpec("1", "2", weight=0.05), RouteSpec("1", "2", weight=0.2, mirror=0.5)]

    def router(self) -> SeldonRouter:
        return SeldonRouter(self.obj(), MODELS, settle_timeout=2.0)

    def carried(self) -> RouteSpec:
        """Seldon's own split: the candidates' weights (the first the baseline's model),
        the mirror's percent."""
        version = {"iris": "1", "iris2": "2"}
        spec = self.current()["spec"]
        candidates = spec["candidates"]
        baseline = version[candidates[0]["name"]]
        if len(candidates) == 1:
            return RouteSpec(baseline=baseline)
        total = sum(c["weight"] for c in candidates)
        candidate = version[candidates[1]["name"]]
        mirror = spec.get("mirror") or {}
        share = mirror.get("percent", 0) / 100 if mirror.get("name") == candidates[1]["name"] else 0
        return RouteSpec(baseline, candidate, candidates[1]["weight"] / total, share)


def harness_for(kind: str, standin: KubernetesApiStandIn, proxy: FaultProxy) -> KubernetesHarness:
    harness = {"kserve": KServeHarness, "istio": IstioHarness, "seldon": SeldonHarness}[kind]
    return harness(proxy=proxy, standin=standin)
