"""`router: {type: kserve | istio | seldon}` in a plan: a valid block builds its router, a
bad field is a problem at file:line:col, and what the platform cannot carry is refused
by plan validation at the stage field that asks for it, with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gray.controller.errors import ConfigError, MissingExtraError, PlanError
from gray.controller.plan.loading import parse_plan
from gray.controller.routers import build_router
from gray.controller.routers.istio import IstioRouter
from gray.controller.routers.kserve import KServeRouter
from gray.controller.routers.kserve_spec import RegistryStorageUris
from gray.controller.routers.kubernetes_object import Connection
from gray.controller.routers.seldon import SeldonRouter
from tests.conftest import DemoRegistry
from tests.kubernetes_api_standin import KubernetesApiStandIn, example
from tests.test_extras import hide

PLAN = """\
name: fraud
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
registry: {{uri: "sqlite:///mlflow.db"}}
interval: 30s
gates:
  - {{metric: error_rate, max_increase: 10%}}
stages:
  - {stage}
  - {{weight: 100%, dwell: 5m}}
router: {router}
"""
KSERVE = "{type: kserve, namespace: models, inference_service: fraud, token: t0ken}"
ISTIO = (
    "{type: istio, namespace: models, virtual_service: fraud, host: fraud.models.svc, "
    "subsets: {baseline: v1, candidate: v2}, port: 8080}"
)
SELDON = "{type: seldon, experiment: fraud-ab, models: {baseline: fraud-a, candidate: fraud-b}}"
FINE = "{weight: 5%, dwell: 5m}"


def plan_text(router: str, stage: str = FINE) -> str:
    return PLAN.format(router=router, stage=stage)


@pytest.mark.parametrize(
    ("block", "router_type", "where"),
    [
        (KSERVE, KServeRouter, "InferenceService models/fraud"),
        (ISTIO, IstioRouter, "VirtualService models/fraud"),
        (SELDON, SeldonRouter, "Experiment default/fraud-ab"),
    ],
)
def test_a_block_builds_its_router(block: str, router_type: type, where: str) -> None:
    plan = parse_plan(plan_text(block), "p.yaml")
    router = build_router(plan.router, plan)
    assert isinstance(router, router_type)
    assert plan.router.describe() == f"{where} at the cluster"
    assert not plan.router.shows_served_version and not plan.router.shows_preprocessor


def test_kserve_takes_each_versions_storage_uri_from_the_registry(
    demo_registry: DemoRegistry,
) -> None:
    locate = RegistryStorageUris(demo_registry.uri, demo_registry.model_name)
    version = demo_registry.versions["baseline"]
    expected = demo_registry.registry().client.mlflow.get_model_version_download_uri(
        demo_registry.model_name, version
    )
    assert locate(version) == expected
    plan = parse_plan(plan_text(KSERVE), "p.yaml")
    router = build_router(plan.router, plan)
    assert isinstance(router, KServeRouter) and router.platform.locate is not None


@pytest.mark.parametrize(
    ("router", "stage", "expected"),
    [
        (
            KSERVE,
            "{mirror: 100%, dwell: 5m}",
            "stages[0].mirror: KServe cannot mirror requests",
        ),
        (
            KSERVE,
            "{weight: 5%, dwell: 5m, audience: {headers: {X-Team: ml}}}",
            "stages[0].audience: KServe's canary splits all of an "
            "InferenceService's requests at random",
        ),
        (
            KSERVE,
            "{weight: 2.5%, dwell: 5m}",
            "stages[0].weight: KServe takes the canary share "
            "(canaryTrafficPercent) in whole percent; 2.50% is not one (use 2% or 3%)",
        ),
        (
            ISTIO,
            "{weight: 5%, dwell: 5m, audience: {cidr: [10.0.0.0/8]}}",
            "stages[0].audience: an Istio VirtualService matches requests by "
            "header, not by client address",
        ),
        (
            ISTIO,
            "{weight: 0.1%, mirror: 0.1%, dwell: 5m}",
            "stages[0].weight: Istio takes the route weights in whole percent; 0.10% is not "
            "one (use 1%)",
        ),
        (
            SELDON,
            "{weight: 5%, dwell: 5m, audience: {headers: {X-Team: ml}}}",
            "stages[0].audience: a Seldon Experiment splits all of its default "
            "model's requests by weight",
        ),
        (
            SELDON,
            "{mirror: 2.5%, dwell: 5m}",
            "stages[0].mirror: Seldon takes the mirror percent in whole percent",
        ),
    ],
)
def test_what_the_platform_cannot_carry_is_refused_at_its_field(
    router: str, stage: str, expected: str
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_text(router, stage), "p.yaml")
    rendered = [problem.render() for problem in caught.value.problems]
    assert len(rendered) == 1, rendered
    place, _, problem = rendered[0].partition(" ")
    assert re.fullmatch(r"p\.yaml:8:\d+:", place) and problem.startswith(expected), rendered


def test_finer_shares_pass_where_the_platform_carries_them() -> None:
    parse_plan(plan_text(SELDON, "{weight: 0.5%, dwell: 5m}"), "p.yaml")  # out of 1000
    parse_plan(plan_text(ISTIO, "{weight: 5%, mirror: 0.5%, dwell: 5m}"), "p.yaml")


def test_a_bad_field_is_a_problem_at_its_place() -> None:
    text = plan_text(
        ISTIO.replace("{baseline: v1, candidate: v2}", "{baseline: v1, candidate: v1}")
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    assert [p.render() for p in caught.value.problems] == [
        "p.yaml:10:99: router.subsets: baseline and candidate name one place ('v1')"
    ]


def test_a_server_and_token_reach_the_api_server_with_the_bearer_token(
    kubernetes_api: KubernetesApiStandIn,
) -> None:
    kubernetes_api.put(example("kserve-sklearn-iris.yaml"), "models")
    block = KSERVE.replace("inference_service: fraud", "inference_service: sklearn-iris")
    block = block.replace("{type: kserve,", f'{{type: kserve, server: "{kubernetes_api.url}",')
    plan = parse_plan(plan_text(block), "p.yaml")
    assert build_router(plan.router, plan).read().lease is None
    assert kubernetes_api.authorizations[-1] == "Bearer t0ken"


def test_no_kubeconfig_and_no_cluster_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot use the kubeconfig"):
        Connection(kubeconfig=str(tmp_path / "missing")).api()


def test_without_the_kubernetes_extra_the_router_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide(monkeypatch, "kubernetes")
    with pytest.raises(MissingExtraError, match=r"gray-rollout\[kubernetes\]"):
        Connection(server="https://kubernetes.default.svc").api()
