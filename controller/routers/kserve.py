"""The Router for a KServe InferenceService: its predictor's `canaryTrafficPercent`.

KServe keeps the last revision that took 100 % of traffic (the rolled-out revision) and
sends `canaryTrafficPercent` of requests to the latest revision, the rest to the
rolled-out one. So gray's baseline is the rolled-out revision and its candidate the
latest, whose predictor `storageUri` is the candidate version's model files, taken
from the MLflow registry (the version's download URI). `ensure_loaded(candidate)` writes
that URI with `canaryTrafficPercent: 0`: KServe starts the revision and sends it nothing.
A stage writes the percent, a rollback 0, a promotion removes the field (the latest
revision takes everything and becomes the rolled-out one). The split read back is
KServe's own: `status.components.predictor.traffic`, once the status has caught up with
the write (`observedGeneration`, and the latest revision ready).

KServe splits each request at random, with no routing key, no header rules and no
mirror; `problems` refuses those, and shares between whole percents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gray.controller.errors import (
    ConfigError,
    RouterError,
    RouteVerificationError,
    VersionNotLoadedError,
)
from gray.controller.routers.kubernetes_object import (
    KubeObject,
    KubernetesObject,
    ObjectRef,
    Patch,
    RouteRecord,
    marks_patch,
)
from gray.controller.routers.kubernetes_router import ObjectRouter, percent_problem
from gray.controller.types import RouteSpec

ROLLED_OUT = "@rolled-out"  # the record's place for the rolled-out revision's storage URI
VERSION_LABEL = "version"  # the predictor pods' label naming the model version they serve


def inference_service(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(
        "InferenceService", "serving.kserve.io", "v1beta1", "inferenceservices", namespace, name
    )


def predictor(obj: KubeObject) -> dict[str, Any]:
    return (obj.get("spec") or {}).get("predictor") or {}


def model_key(obj: KubeObject, where: object) -> str:
    """The predictor's entry that holds `storageUri`: `model` (KServe's current form) or a
    framework's (`sklearn`, `tensorflow`, ... in older InferenceServices)."""
    spec = predictor(obj)
    if isinstance(spec.get("model"), dict):
        return "model"
    keys = [k for k, v in spec.items() if isinstance(v, dict) and "storageUri" in v]
    if len(keys) != 1:
        raise RouterError(
            f"{where}: its predictor has no single model with a storageUri (found "
            f"{keys or 'none'}); gray writes the candidate's model files there"
        )
    return keys[0]


def storage_uri(obj: KubeObject, where: object) -> str:
    return str(predictor(obj)[model_key(obj, where)].get("storageUri") or "")


def _status(obj: KubeObject) -> dict[str, Any]:
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def latest_percent(obj: KubeObject) -> int:
    """The share of requests KServe reports for the latest revision (no traffic in the
    status yet: what the spec asks)."""
    traffic = _status(obj).get("traffic")
    if traffic:
        return sum(int(t.get("percent") or 0) for t in traffic if t.get("latestRevision"))
    canary = predictor(obj).get("canaryTrafficPercent")
    return 100 if canary is None else int(canary)


class KServePlatform:
    """What a route is in an InferenceService. `locate(version)` is the storage URI of a
    model version's files (None: only versions the object's record names are known)."""

    def __init__(self, where: str, locate: Callable[[str], str] | None = None) -> None:
        self.where = where
        self.locate = locate

    def problems(self, route: RouteSpec) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        if route.mirror > 0:
            found.append(
                (
                    "mirror",
                    "KServe cannot mirror requests (the route asks to copy "
                    f"{route.mirror:.2%} of them): an InferenceService sends each request to "
                    "one revision. Give the stage a weight, or use gray's gateway or Istio",
                )
            )
        if not route.audience.is_everyone:
            found.append(
                (
                    "audience",
                    "KServe's canary splits all of an InferenceService's requests at random; "
                    "it has no cidr or header rules. Remove the stage's audience, or route "
                    "with Istio",
                )
            )
        problem = percent_problem(route.weight, "canary share (canaryTrafficPercent)", "KServe")
        if problem:
            found.append(("weight", problem))
        return found

    def uri_of(self, version: str, record: RouteRecord | None) -> str:
        known = record.places.get(version) if record else None
        if known:
            return known
        if self.locate is None:
            raise ConfigError(
                f"{self.where}: the storage URI of v{version} is unknown; gray takes it from "
                "the plan's model registry, so build the router from a plan"
            )
        return self.locate(version)

    def places(self, route: RouteSpec, record: RouteRecord | None) -> dict[str, str]:
        places = dict(record.places) if record else {}
        for version in (route.baseline, route.candidate):
            if version:  # "" is a version gray never wrote: the object's own
                places[version] = self.uri_of(version, record)
        if route.candidate is None and route.baseline:
            # The baseline alone: its revision takes 100 % and is the rolled-out one after.
            places[ROLLED_OUT] = places[route.baseline]
        return places

    def spec_patch(self, obj: KubeObject, route: RouteSpec, places: dict[str, str]) -> Patch:
        key = model_key(obj, self.where)
        canary = predictor(obj).get("canaryTrafficPercent")
        rolled_out = places.get(ROLLED_OUT)
        if route.candidate is None:
            # The baseline takes everything: the latest revision if it serves the
            # baseline (a promotion), else the rolled-out revision (canary 0).
            baseline_uri = places.get(route.baseline)
            at_latest = baseline_uri == storage_uri(obj, self.where)
            percent = None if at_latest or (canary is None and not baseline_uri) else 0
            return {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
        baseline_uri = places.get(route.baseline)
        if rolled_out and baseline_uri and baseline_uri != rolled_out:
            raise VersionNotLoadedError(
                f"{self.where}: its rolled-out revision serves {rolled_out}, not the "
                f"baseline v{route.baseline} ({baseline_uri}); a canary would split between "
                "the wrong versions"
            )
        uri = places.get(route.candidate) or storage_uri(obj, self.where)
        percent = round(route.weight * 100)
        return {"spec": {"predictor": {key: {"storageUri": uri}, "canaryTrafficPercent": percent}}}

    def route_of(self, obj: KubeObject, record: RouteRecord | None) -> RouteSpec:
        latest = (record.version_at(storage_uri(obj, self.where)) if record else None) or ""
        canary = predictor(obj).get("canaryTrafficPercent")
        share = latest_percent(obj) / 100
        if canary is None:
            return RouteSpec(baseline=latest)
        baseline = record.route.baseline if record else ""
        if latest == baseline and share >= 1:
            return RouteSpec(baseline=baseline)
        return RouteSpec(baseline=baseline, candidate=latest, weight=share)

    def settled(self, obj: KubeObject) -> bool:
        generation = (obj.get("metadata") or {}).get("generation")
        observed = (obj.get("status") or {}).get("observedGeneration")
        if generation is not None and (observed is None or observed < generation):
            return False
        status = _status(obj)
        # No traffic in the status: KServe is not splitting (RawDeployment mode ignores
        # canaryTrafficPercent), so a write is never taken as carried.
        return bool(status.get("traffic")) and status.get("latestReadyRevision") == status.get(
            "latestCreatedRevision"
        )


class KServeRouter(ObjectRouter):
    """Drives one InferenceService's canary; `locate` maps a version to its storage URI."""

    platform: KServePlatform

    def __init__(
        self,
        obj: KubernetesObject,
        locate: Callable[[str], str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(KServePlatform(obj.where, locate), obj, **options)
        # Versions ensure_loaded found serving already (the baseline, in a preflight):
        # the record written when the candidate is loaded names them.
        self._serving: dict[str, str] = {}

    def ensure_loaded(self, version: str) -> str | None:
        """Start `version`'s revision with no traffic (`canaryTrafficPercent: 0`) unless the
        InferenceService already serves it, and wait until KServe says it is ready. KServe
        cannot say which preprocessor a model applies: None."""
        obj = self.object.read()
        record = RouteRecord.of(obj, self.where)
        uri = self.platform.uri_of(version, record)
        canary = predictor(obj).get("canaryTrafficPercent")
        rolled_out = storage_uri(obj, self.where) if canary is None else None
        if record and canary is not None:
            rolled_out = record.places.get(ROLLED_OUT)
        if uri in (storage_uri(obj, self.where), rolled_out):
            self._serving = {version: uri}
        else:
            obj = self.object.update(lambda current: self._load(current, version, uri))
        try:
            obj = self._settle(obj)
        except RouteVerificationError:
            obj = self.object.read()
        if storage_uri(obj, self.where) == uri and not self._ready(obj):
            raise VersionNotLoadedError(
                f"{self.where}: the revision for v{version} ({uri}) is not ready after "
                f"{self.settle_timeout:g} s: {_status(obj).get('latestCreatedRevision')} "
                f"created, {_status(obj).get('latestReadyRevision')} ready"
            )
        return None

    def _load(self, obj: KubeObject, version: str, uri: str) -> Patch:
        """The write that makes `uri` the latest revision with no traffic."""
        record = RouteRecord.of(obj, self.where)
        canary = predictor(obj).get("canaryTrafficPercent")
        if canary:
            raise VersionNotLoadedError(
                f"{self.where} sends {canary}% of requests to its latest revision "
                f"({storage_uri(obj, self.where)}); roll that canary back or promote it "
                f"before loading v{version}"
            )
        route = self.platform.route_of(obj, record)
        places = {**(record.places if record else {}), **self._serving}
        if canary is None:  # the latest revision is the rolled-out one, serving everything
            places[ROLLED_OUT] = storage_uri(obj, self.where)
        baseline = route.baseline or RouteRecord(route, places).version_at(
            places.get(ROLLED_OUT, "")
        )
        if baseline and canary is None:
            places[baseline] = places[ROLLED_OUT]
        places[version] = uri
        key = model_key(obj, self.where)
        loaded = RouteSpec(baseline=baseline or "", candidate=version, weight=0.0)
        metadata = marks_patch(None, RouteRecord(loaded, places))  # loading takes no lease
        # The revision's pods carry the version they serve (`version`), which the scrape
        # copies onto Knative's series for the kserve metrics preset.
        labels = {VERSION_LABEL: version}
        return {
            **metadata,
            "spec": {
                "predictor": {
                    key: {"storageUri": uri},
                    "canaryTrafficPercent": 0,
                    "labels": labels,
                }
            },
        }

    @staticmethod
    def _ready(obj: KubeObject) -> bool:
        status = _status(obj)
        return bool(status.get("latestReadyRevision")) and status.get(
            "latestReadyRevision"
        ) == status.get("latestCreatedRevision")
