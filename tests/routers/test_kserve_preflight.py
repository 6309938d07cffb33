"""A KServe plan's preflight against the demo MLflow registry and the Kubernetes API
stand-in: the router built from the plan takes each version's storage URI from the
registry, the candidate's revision starts with no traffic, and the checks KServe cannot
make are said rather than failed. An InferenceService that serves another model than
the plan's baseline gets no candidate traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from gray.controller import rollouts
from gray.controller.errors import VersionNotLoadedError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import Plan
from gray.controller.registry import Registry
from gray.controller.routers import build_router
from gray.controller.routers.kserve import KServeRouter, inference_service
from gray.controller.routers.kubernetes_object import Connection, KubernetesObject
from gray.controller.types import Lease, RouteSpec
from tests.conftest import DemoRegistry
from tests.fakes import FakeClock, FakeMetrics, FakeRouter
from tests.kubernetes_api_standin import KubernetesApiStandIn, example

NAMESPACE = "fraud-serving"


def kserve_plan(registry_uri: str, server: str) -> Plan:
    text = f"""\
name: kserve-preflight
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
registry: {{uri: "{registry_uri}"}}
router: {{type: kserve, server: "{server}", namespace: {NAMESPACE}, inference_service: fraud}}
interval: 10s
gates: [{{metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%}}]
stages: [{{weight: 10%, dwell: 1m}}, {{weight: 100%, dwell: 1m}}]
"""
    return parse_plan(text, "plan.yaml", environ={})


def serving(kubernetes_api: KubernetesApiStandIn, storage_uri: str) -> str:
    """An InferenceService `fraud` whose predictor loads `storage_uri`; its API path."""
    obj = example("kserve-sklearn-iris.yaml")
    obj["metadata"]["name"] = "fraud"
    obj["spec"]["predictor"]["model"]["storageUri"] = storage_uri
    return kubernetes_api.put(obj, NAMESPACE)


@pytest.fixture(scope="module")
def registry(demo_registry: DemoRegistry) -> Registry:
    return demo_registry.registry()


def download_uri(registry: Registry, role: str, demo_registry: DemoRegistry) -> str:
    return registry.client.download_uri(demo_registry.model_name, demo_registry.versions[role])


def test_the_preflight_loads_the_candidate_from_the_registry_with_no_traffic(
    demo_registry: DemoRegistry,
    registry: Registry,
    kubernetes_api: KubernetesApiStandIn,
    tmp_path: Path,
) -> None:
    baseline_uri = download_uri(registry, "baseline", demo_registry)
    candidate_uri = download_uri(registry, "good", demo_registry)
    path = serving(kubernetes_api, baseline_uri)
    plan = kserve_plan(demo_registry.uri, kubernetes_api.url)
    router = build_router(plan.router, plan)
    metrics = FakeMetrics(FakeClock(), FakeRouter(baseline=demo_registry.versions["baseline"]))
    report = rollouts.preflight(plan, registry, router, metrics, Journal(LocalJournal(tmp_path)))
    assert [(c.name, c.ok) for c in report.checks] == [
        ("versions", True),
        ("baseline preprocessor", True),
        ("candidate preprocessor", True),
        ("endpoint", True),
        ("endpoint baseline", True),
        ("baseline loaded", True),
        ("candidate loaded", True),
        ("metrics", True),
    ]
    details = {c.name: c.detail for c in report.checks}
    assert "kserve cannot show which version it serves" in details["endpoint baseline"]
    assert "cannot show which preprocessor" in details["candidate loaded"]
    assert kubernetes_api.get(path)["spec"]["predictor"]["model"]["storageUri"] == candidate_uri
    assert kubernetes_api.kserve_split(path) == {baseline_uri: 100, candidate_uri: 0}
    seen = router.read().route
    assert (seen.baseline, seen.candidate, seen.weight) == (
        demo_registry.versions["baseline"],
        demo_registry.versions["good"],
        0.0,
    )


def test_an_inference_service_serving_another_model_gets_no_candidate_traffic(
    kubernetes_api: KubernetesApiStandIn,
) -> None:
    uris = {"1": "s3://models/fraud/1", "2": "s3://models/fraud/2"}
    path = serving(kubernetes_api, "s3://models/fraud/0")
    connection = Connection(server=kubernetes_api.url)
    obj = KubernetesObject(inference_service(NAMESPACE, "fraud"), connection, first_pause=0.01)
    router = KServeRouter(obj, uris.__getitem__, settle_timeout=2.0)
    router.ensure_loaded("1")  # not what it serves: started, with no traffic
    router.ensure_loaded("2")
    with pytest.raises(
        VersionNotLoadedError, match="rolled-out revision serves s3://models/fraud/0"
    ):
        router.apply(RouteSpec("1", "2", weight=0.1), Lease("fraud", 1), ttl=60)
    assert kubernetes_api.kserve_split(path) == {"s3://models/fraud/0": 100, uris["2"]: 0}
