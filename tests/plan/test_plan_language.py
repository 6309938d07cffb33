"""The plan's input forms and derived views."""

from __future__ import annotations

import pytest

from gray.controller.plan.loading import parse_plan
from gray.controller.plan.units import format_duration, parse_duration, parse_share

from .test_broken_plans import VALID


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "share"), [("5%", 0.05), ("0.1%", 0.001), (0.05, 0.05), (1, 1.0)])
def test_shares(text: object, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("seconds", [0.25, 1, 59, 90, 3600, 5400, 90061])
def test_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_variables_with_defaults_and_values() -> None:
    text = VALID + 'registry: {uri: "${REG:-sqlite:///x.db}"}\nrouter: {url: "${URL}"}\n'
    plan = parse_plan(text, "p.yaml", environ={"URL": "http://10.0.0.1:8080"})
    assert plan.registry.uri == "sqlite:///x.db"
    assert plan.router.url == "http://10.0.0.1:8080"


def test_variable_keeps_the_value_type() -> None:
    text = VALID.replace(
        "{weight: 50%, dwell: 5m}", '{weight: 50%, dwell: 5m, min_requests: "${N:-250}"}'
    )
    plan = parse_plan(text, "p.yaml", environ={})
    assert plan.stages[1].min_requests == 250


def test_stage_gate_overrides_merge_add_and_disable() -> None:
    text = VALID.replace(
        "{weight: 50%, dwell: 5m}",
        "{weight: 50%, dwell: 5m, gates: [{metric: error_rate, max_increase: 20%},"
        " {metric: disagreement, max: 5%}]}",
    ).replace(
        "{weight: 5%, dwell: 5m}",
        "{weight: 5%, dwell: 5m, gates: [{metric: error_rate, enabled: false},"
        " {metric: bad_request_rate, max_increase: 5%}]}",
    )
    plan = parse_plan(text, "p.yaml", environ={})
    assert [g.key for g in plan.stage_gates(0)] == ["bad_request_rate"]
    gates = {g.key: g for g in plan.stage_gates(1)}
    assert gates["error_rate"].max_increase == pytest.approx(0.2)
    assert gates["disagreement"].max == pytest.approx(0.05)


def test_a_stage_changes_or_adds_a_latency_gate() -> None:
    """A latency gate's slo is carried into the stage's version of it, whether the stage
    changes the plan's gate or adds one of its own."""
    text = VALID.replace(
        "  - {metric: error_rate, max_increase: 10%}",
        "  - {metric: error_rate, max_increase: 10%}\n"
        "  - {metric: latency, slo: 250ms, max_increase: 20%}",
    ).replace(
        "{weight: 5%, dwell: 5m}",
        "{weight: 5%, dwell: 5m, gates: [{metric: latency, max_increase: 30%},"
        " {metric: latency, slo: 1.5s, max_increase: 50%}]}",
    )
    plan = parse_plan(text, "p.yaml", environ={})
    latency = [(g.slo, g.max_increase) for g in plan.stage_gates(0) if g.metric == "latency"]
    assert latency == [(0.25, pytest.approx(0.3)), (1.5, pytest.approx(0.5))]
    assert plan.slo_edges() == (0.25, 1.5)


def test_stage_lookup_by_number_and_name() -> None:
    plan = parse_plan(VALID, "p.yaml", environ={})
    assert plan.stage_index("2") == 1
    assert plan.stage_index("5%") == 0
    with pytest.raises(ValueError, match="no stage"):
        plan.stage_index("7")


def test_slo_edges_collects_latency_gates() -> None:
    text = VALID.replace(
        "  - {metric: error_rate, max_increase: 10%}",
        "  - {metric: error_rate, max_increase: 10%}\n  - {metric: latency, slo: 250ms, max_increase: 20%}",
    )
    plan = parse_plan(text, "p.yaml", environ={})
    assert plan.slo_edges() == (0.25,)
