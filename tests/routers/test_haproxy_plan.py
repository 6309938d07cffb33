"""`router: {type: haproxy}` and `metrics: {type: haproxy}` in a plan: a valid block builds
the adapters, a bad field is a problem at file:line:col, and what HAProxy cannot route
or count is refused by plan validation, at the field that asks for it."""

from __future__ import annotations

import pytest

from gray.controller.errors import ConfigError, PlanError
from gray.controller.metrics import build_metrics
from gray.controller.metrics.haproxy import HaproxyMetrics
from gray.controller.plan.loading import parse_plan
from gray.controller.routers import build_router
from gray.controller.routers.haproxy import HaproxyRouter

PLAN = """\
name: fraud
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
interval: 30s
gates:
  - {gate}
stages:
  - {{weight: 5%, dwell: 5m}}
router:
  type: haproxy
  runtime_api: {runtime_api}
  backend: fraud
  servers: {{baseline: {baseline}, candidate: fraud-v2}}
metrics: {metrics}
"""
ERROR_GATE = "{metric: error_rate, max_increase: 10%}"


def plan_text(**changes: str) -> str:
    fields = {
        "gate": ERROR_GATE,
        "runtime_api": "unix:///run/haproxy/admin.sock",
        "baseline": "fraud-v1",
        "metrics": "{type: haproxy}",
    }
    return PLAN.format(**{**fields, **changes})


def test_a_haproxy_plan_builds_both_adapters() -> None:
    plan = parse_plan(plan_text(runtime_api="tcp://127.0.0.1:9999"), "p.yaml")
    router = build_router(plan.router)
    assert isinstance(router, HaproxyRouter)
    assert (router.backend, router.roles) == (
        "fraud",
        {"baseline": "fraud-v1", "candidate": "fraud-v2"},
    )
    metrics = build_metrics(plan.metrics, plan)
    assert isinstance(metrics, HaproxyMetrics)
    assert (str(metrics.api.address), metrics.backend) == ("tcp://127.0.0.1:9999", "fraud")
    assert plan.router.describe() == "HAProxy backend fraud at tcp://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"runtime_api": "http://lb:9999"},
            "p.yaml:10:16: router.runtime_api: HAProxy runtime_api 'http://lb:9999' is not "
            "unix:///path/to/socket or tcp://host:port",
        ),
        (
            {"baseline": "fraud-v2"},
            "p.yaml:12:12: router.servers: baseline and candidate name one server ('fraud-v2')",
        ),
        (
            {"metrics": "{type: haproxy, backnd: x}"},
            "p.yaml:13:26: metrics.backnd: unknown field 'backnd'; did you mean 'backend'?",
        ),
    ],
)
def test_a_bad_field_is_a_problem_at_its_place(changes: dict[str, str], expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_text(**changes), "p.yaml")
    assert [problem.render() for problem in caught.value.problems] == [expected]


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("{metric: latency, slo: 250ms, max_increase: 20%}", "cannot feed the latency gate"),
        ("{metric: accuracy, max_decrease: 1%}", "cannot feed the accuracy gate"),
    ],
)
def test_gates_haproxy_cannot_feed_are_refused(gate: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_text(gate=gate), "p.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (5, "gates[0].metric")
    assert message in problem.message


def test_haproxy_metrics_beside_another_router_need_an_address() -> None:
    text = plan_text().split("router:")[0] + "metrics: {type: haproxy}\n"
    with pytest.raises(PlanError, match="needs runtime_api and backend"):
        parse_plan(text, "p.yaml")


def test_the_metrics_adapter_refuses_a_plan_built_around_validation() -> None:
    plan = parse_plan(plan_text(), "p.yaml")
    latency = plan.gates[0].model_copy(update={"metric": "latency"})
    with pytest.raises(ConfigError, match="cannot feed the latency gate"):
        build_metrics(plan.metrics, plan.model_copy(update={"gates": [latency]}))


@pytest.mark.parametrize(
    ("stage", "field", "message"),
    [
        ("{mirror: 10%, dwell: 5m}", "mirror", "HAProxy cannot mirror requests"),
        (
            "{weight: 5%, dwell: 5m, audience: {headers: {X-Beta: 'yes'}}}",
            "audience",
            "an audience (cidr or header rules) needs routing rules",
        ),
        ("{weight: 0.1%, dwell: 5m}", "weight", "split traffic no finer than 0.39%"),
    ],
)
def test_stages_haproxy_cannot_route_are_refused_by_validation(
    stage: str, field: str, message: str
) -> None:
    text = plan_text().replace("  - {weight: 5%, dwell: 5m}", f"  - {stage}")
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (7, f"stages[0].{field}")
    assert message in problem.message


def test_an_unfed_gate_is_refused_where_it_is_declared_and_only_where_it_judges() -> None:
    """A stage's own gate is named at the stage; a plan gate that every stage turns off
    judges nothing and is not refused."""
    text = plan_text().replace(
        "  - {weight: 5%, dwell: 5m}",
        "  - {weight: 5%, dwell: 5m, gates: [{metric: accuracy, max_decrease: 1%}]}",
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [(7, "stages[0].gates[0].metric")]
    assert "metrics type haproxy cannot feed the accuracy gate: HAProxy counts" in str(caught.value)

    switched_off = plan_text(
        gate="{metric: error_rate, max_increase: 10%}\n  - " + LATENCY
    ).replace(
        "  - {weight: 5%, dwell: 5m}",
        "  - {weight: 5%, dwell: 5m, gates: [{metric: latency, enabled: false}]}",
    )
    assert parse_plan(switched_off, "p.yaml").stage_gates(0)[0].metric == "error_rate"


LATENCY = "{metric: latency, slo: 250ms, max_increase: 20%}"
