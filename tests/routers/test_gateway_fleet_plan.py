"""The plan's gateway router and metrics blocks: one `url`, or `urls` for every replica of
a fleet (never both), and the adapters each builds."""

from __future__ import annotations

import pytest

from gray.controller.errors import PlanError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.metrics.gateway_fleet import GatewayFleetMetrics
from gray.controller.plan.loading import parse_plan
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.routers.gateway_fleet import GatewayFleet

PLAN = """\
name: fleet
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
router: {type: gateway, ROUTER}
interval: 1s
gates: [{metric: error_rate, max_increase: 10%}]
stages: [{weight: 10%, dwell: 10s}]
"""


def test_urls_build_a_fleet_and_its_metrics_sum_every_replica() -> None:
    plan = parse_plan(PLAN.replace("ROUTER", 'urls: ["http://a:1", "http://b:1/"]'), "p.yaml")
    router = plan.router.build()
    assert isinstance(router, GatewayFleet) and router.urls == ("http://a:1", "http://b:1")
    assert plan.router.describe() == "http://a:1, http://b:1/"
    metrics = plan.metrics.build(plan)
    assert isinstance(metrics, GatewayFleetMetrics)
    assert [replica.url for replica in metrics.replicas] == ["http://a:1", "http://b:1"]


def test_one_url_builds_one_gateway_as_before() -> None:
    plan = parse_plan(PLAN.replace("ROUTER", 'url: "http://a:1"'), "p.yaml")
    assert isinstance(plan.router.build(), GatewayRouter)
    assert isinstance(plan.metrics.build(plan), GatewayMetrics)
    default = parse_plan(PLAN.replace("router: {type: gateway, ROUTER}\n", ""), "p.yaml")
    assert default.router.describe() == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ('url: "http://a:1", urls: ["http://b:1"]', "not both"),
        ('urls: ["http://a:1", "http://a:1/"]', "names a replica twice"),
        ("urls: []", "expected at least one entry"),
    ],
)
def test_a_bad_address_block_is_a_problem_at_its_line(block: str, words: str) -> None:
    with pytest.raises(PlanError) as problem:
        parse_plan(PLAN.replace("ROUTER", block), "plan.yaml")
    assert "plan.yaml:3:" in str(problem.value) and words in str(problem.value)
