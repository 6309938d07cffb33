"""The `metrics: {type: prometheus}` plan block, its presets and its series selectors."""

from __future__ import annotations

import pytest

from gray.controller.errors import ConfigError, MetricsError, PlanError
from gray.controller.metrics import build_metrics
from gray.controller.metrics.prometheus import PrometheusMetrics, PrometheusMetricsSpec
from gray.controller.metrics.prometheus.promql import (
    Matcher,
    PrometheusClient,
    Selector,
    matcher_from_value,
    parse_selector,
)
from gray.controller.plan.loading import parse_plan
from gray.controller.types import Pair
from gray.gateway.testing import free_port

PLAN = """\
name: prom
model: {name: fraud, baseline: "1", candidate: "2"}
router: {type: gateway, url: "http://127.0.0.1:8080"}
metrics:
  type: prometheus
  url: http://127.0.0.1:9090
%s
gates:
  - {metric: latency, slo: 200ms, max_increase: 10%%}
stages:
  - {weight: 10%%, dwell: 1m}
"""


def plan_with(block: str) -> str:
    return PLAN % block


def test_a_plan_with_a_prometheus_block_builds_the_prometheus_source() -> None:
    plan = parse_plan(plan_with("  preset: istio\n  selector: {destination_service_name: fraud}"))
    assert isinstance(plan.metrics, PrometheusMetricsSpec)
    source = build_metrics(plan.metrics, plan)
    assert isinstance(source, PrometheusMetrics)
    assert source.slo_edges == (0.2,)
    requests = source.layout.live["requests"]
    assert requests.render() == (
        'istio_requests_total{reporter="destination", destination_service_name="fraud"}'
    )
    source.close()


@pytest.mark.parametrize(
    ("block", "line", "words"),
    [
        ("  preset: datadog", 7, "expected one of gray, istio"),
        ("  selector: {job: '=~fraud[' }", 7, "not a regular expression"),
        ("  queries: {requests: 'sum(gray_requests_total)'}", 7, "functions and aggregations"),
        ("  queries: {requests: 'gray_requests_total'}", 5, "must give both requests and errors"),
        ("  version_value: 'v{ver}'", 7, "use {version}"),
        ("  lookback: forever", 7, "duration"),
        ("  bogus: 1", 7, "bogus"),
    ],
)
def test_a_bad_field_is_a_plan_problem_at_its_line(block: str, line: int, words: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_with(block), "plan.yaml")
    problems = caught.value.problems
    matching = [p for p in problems if words in p.render()]
    assert matching, [p.render() for p in problems]
    assert matching[0].line == line and matching[0].file == "plan.yaml", matching[0].render()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(PlanError, match="http:// or https://"):
        parse_plan(PLAN.replace("http://127.0.0.1:9090", "127.0.0.1:9090") % "")


def test_no_preset_and_no_queries_reads_the_gateway_page() -> None:
    layout = PrometheusMetricsSpec(url="http://p:9090").layout()
    assert layout.live["requests"] == Selector(
        "gray_requests_total", (Matcher("traffic", "=", "live"),)
    )
    assert layout.shadow["errors"].render() == 'gray_errors_total{traffic="shadow"}'
    assert layout.start_time == Selector("gray_start_time_seconds")


def test_queries_replace_the_preset_and_the_selector_narrows_them_all() -> None:
    spec = PrometheusMetricsSpec(
        url="http://p:9090",
        preset="istio",
        selector={"destination_workload": "=~fraud-.*", "reporter": "source"},
        queries={"errors": 'istio_requests_total{response_code=~"5..|429"}'},
        version_label="destination_workload",
        latency_unit="s",
    )
    layout = spec.layout()
    assert layout.live["errors"].render() == (
        'istio_requests_total{response_code=~"5..|429", destination_workload=~"fraud-.*", '
        'reporter="source"}'
    )
    # The preset's own reporter matcher stays: the selector adds, it does not override.
    assert dict((m.label, m.value) for m in layout.live["requests"].matchers)["reporter"] == (
        "destination"
    )
    assert layout.version_label == "destination_workload"
    assert layout.latency_scale == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up", Selector("up")),
        (
            ' http_requests_total { code =~ "5..", job!="x\\"y" , } ',
            Selector(
                "http_requests_total",
                (Matcher("code", "=~", "5.."), Matcher("job", "!=", 'x"y')),
            ),
        ),
        ("a:b_c{x!~'y'}", Selector("a:b_c", (Matcher("x", "!~", "y"),))),
    ],
)
def test_selectors_parse_and_render_back(text: str, expected: Selector) -> None:
    parsed = parse_selector(text)
    assert parsed == expected
    assert parse_selector(parsed.render()) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rate(x[5m])", "functions and aggregations"),
        ("x[5m]", "column 2"),
        ('{job="x"}', "names no metric"),
        ("x{job=x}", "quoted value"),
        ('x{job="x"', "expected , or }"),
        ('x{job:"x"}', "expected =, !=, =~ or !~"),
        ('x{job="unclosed}', "unclosed quote"),
    ],
)
def test_what_is_not_a_selector_is_refused_with_where(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[")):
        parse_selector(text)


def test_selector_values_may_carry_their_operator() -> None:
    assert matcher_from_value("job", "gray") == Matcher("job", "=", "gray")
    assert matcher_from_value("job", "!=gray") == Matcher("job", "!=", "gray")
    assert matcher_from_value("job", "=~gr.*") == Matcher("job", "=~", "gr.*")
    with pytest.raises(ValueError, match="label name"):
        matcher_from_value("1job", "gray")


def test_a_prometheus_that_is_down_is_a_metrics_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = PrometheusClient(url, retries=1, backoff=0.01)
    metrics = PrometheusMetrics(client, PrometheusMetricsSpec(url=url).layout())
    with pytest.raises(MetricsError, match=f"cannot query Prometheus at {url}"):
        metrics.snapshot(Pair("1", "2"))


def test_a_shadow_stage_on_a_source_without_mirrored_counts_is_refused_before_it_starts() -> None:
    text = plan_with("  preset: istio").replace(
        "  - {weight: 10%, dwell: 1m}", "  - {name: mirror, mirror: 20%, dwell: 1m}"
    )
    with pytest.raises(PlanError, match="stage mirror mirrors traffic") as caught:
        parse_plan(text)
    assert [p.field for p in caught.value.problems] == ["stages[0].mirror"]
    gray = parse_plan(text.replace("preset: istio", "preset: gray"))
    build_metrics(gray.metrics, gray).close()


@pytest.mark.parametrize(
    ("gate", "block", "words"),
    [
        (
            "{metric: disagreement, max: 5%}",
            "  preset: istio",
            "shadow.disagreements, shadow.pairs",
        ),
        ("{metric: accuracy, max_decrease: 5%}", "  preset: istio", "correct, labelled"),
        (
            "{metric: latency_distribution, tolerance: 10%}",
            "  queries: {requests: 'a_total', errors: 'b_total'}",
            "latency_buckets",
        ),
        (
            "{metric: bad_request_rate, max_increase: 5%}",
            "  queries: {requests: a, errors: b}",
            "bad_requests",
        ),
    ],
)
def test_a_gate_reading_a_counter_the_source_has_no_series_for_is_refused(
    gate: str, block: str, words: str
) -> None:
    text = plan_with(block).replace("{metric: latency, slo: 200ms, max_increase: 10%}", gate)
    with pytest.raises(PlanError, match=f"gate: it reads {words}, which") as caught:
        parse_plan(text)
    assert [p.field for p in caught.value.problems] == ["gates[0].metric"]


def test_the_source_refuses_a_plan_built_around_validation() -> None:
    plan = parse_plan(plan_with("  preset: istio"))
    accuracy = plan.gates[0].model_copy(update={"metric": "accuracy", "max_decrease": 0.05})
    with pytest.raises(ConfigError, match="accuracy gate: it reads correct, labelled"):
        build_metrics(plan.metrics, plan.model_copy(update={"gates": [accuracy]}))


def test_the_gray_preset_reads_every_gate_and_the_istio_preset_the_live_ones() -> None:
    every_gate = (
        "{metric: latency, slo: 200ms, max_increase: 10%}\n"
        "  - {metric: error_rate, max_increase: 10%}\n"
        "  - {metric: bad_request_rate, max_increase: 10%}\n"
        "  - {metric: latency_distribution, tolerance: 10%}\n"
        "  - {metric: accuracy, max_decrease: 5%}\n"
        "  - {metric: disagreement, max: 5%}"
    )
    text = plan_with("  preset: gray").replace(
        "{metric: latency, slo: 200ms, max_increase: 10%}", every_gate
    )
    text = text.replace(
        "  - {weight: 10%, dwell: 1m}", "  - {mirror: 20%, dwell: 1m}\n  - {weight: 10%, dwell: 1m}"
    )
    plan = parse_plan(text)
    assert len(plan.gates) == 6 and plan.stages[0].is_shadow
    build_metrics(plan.metrics, plan).close()
    live_only = (
        "{metric: latency, slo: 200ms, max_increase: 10%}\n"
        "  - {metric: error_rate, max_increase: 10%}\n"
        "  - {metric: bad_request_rate, max_increase: 10%}\n"
        "  - {metric: latency_distribution, tolerance: 10%}"
    )
    istio = parse_plan(
        plan_with("  preset: istio").replace(
            "{metric: latency, slo: 200ms, max_increase: 10%}", live_only
        )
    )
    build_metrics(istio.metrics, istio).close()
