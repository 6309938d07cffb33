"""The metric table: every metric a plan accepts has a family, counters, margins and words,
and the plan, its checks, the judge and the wording all follow the table's row."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gray.controller import gates
from gray.controller.errors import PlanError
from gray.controller.gates.config import MARGIN_FIELDS
from gray.controller.gates.families import FAMILIES
from gray.controller.gates.metrics import METRICS, MetricDefinition, metric
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import GateSpec, StageGate
from gray.controller.types import ShadowCounters, Snapshot, VersionCounters

PLAN = """\
name: table
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
gates:
  - {gate}
stages:
  - {{weight: 5%, dwell: 5m}}
"""


def accepted_metrics(model: type) -> set[str]:
    return set(typing.get_args(model.model_fields["metric"].annotation))


def first_margin(definition: MetricDefinition) -> str:
    slo = ", slo: 250ms" if definition.needs_slo else ""
    return f"{{metric: {definition.name}, {definition.margins[0]}: 5%{slo}}}"


@pytest.mark.parametrize("model", [GateSpec, StageGate])
def test_the_plan_accepts_exactly_the_tables_metrics(model: type) -> None:
    assert accepted_metrics(model) == set(METRICS)


@pytest.mark.parametrize("definition", METRICS.values(), ids=list(METRICS))
def test_every_metric_has_a_family_counters_margins_and_words(
    definition: MetricDefinition,
) -> None:
    assert definition.family in FAMILIES
    assert definition.margins and set(definition.margins) <= set(MARGIN_FIELDS)
    assert definition.words.measured and definition.words.exposures
    counters = {field.name for field in dataclasses.fields(VersionCounters)}
    pairs = {f"shadow.{field.name}" for field in dataclasses.fields(ShadowCounters)}
    assert definition.reads and set(definition.reads) <= counters | pairs
    # The count family reads events through the row; the others read their own counters.
    assert (definition.tally is not None) == (definition.family == "count")
    if definition.tally is not None:
        assert definition.tally.exposures in definition.reads


@pytest.mark.parametrize("definition", METRICS.values(), ids=list(METRICS))
def test_a_gate_with_its_first_margin_is_a_valid_plan(definition: MetricDefinition) -> None:
    plan = parse_plan(PLAN.format(gate=first_margin(definition)), "p.yaml")
    assert plan.gates[0].metric == definition.name


@pytest.mark.parametrize("definition", METRICS.values(), ids=list(METRICS))
def test_a_margin_the_metric_does_not_take_is_refused_naming_the_ones_it_does(
    definition: MetricDefinition,
) -> None:
    foreign = next(name for name in MARGIN_FIELDS if name not in definition.margins)
    gate = first_margin(definition).replace("}", f", {foreign}: 5%}}")
    with pytest.raises(PlanError) as caught:
        parse_plan(PLAN.format(gate=gate), "p.yaml")
    message = str(caught.value)
    assert f"'{foreign}' does not apply to a {definition.name} gate" in message
    assert f"'{definition.margins[0]}'" in message


@pytest.mark.parametrize("definition", METRICS.values(), ids=list(METRICS))
def test_a_gate_without_a_margin_is_refused(definition: MetricDefinition) -> None:
    slo = ", slo: 250ms" if definition.needs_slo else ""
    with pytest.raises(PlanError, match=f"a {definition.name} gate needs its allowed margin"):
        parse_plan(PLAN.format(gate=f"{{metric: {definition.name}{slo}}}"), "p.yaml")


@pytest.mark.parametrize("definition", METRICS.values(), ids=list(METRICS))
def test_the_judge_and_the_wording_follow_the_row(definition: MetricDefinition) -> None:
    spec = parse_plan(PLAN.format(gate=first_margin(definition)), "p.yaml").gates[0]
    judge = gates.start_stage([spec], 0.05, Snapshot(taken_at=0.0), exposure="shadow")
    assert [gate.family for gate in judge.gates] == [definition.family]
    verdict = gates.judge(judge).verdicts[0]
    assert verdict.outcome is gates.Outcome.NODATA
    assert verdict.sentence().startswith(definition.words.measured)
    live = gates.start_stage([spec], 0.05, Snapshot(taken_at=0.0), exposure="live")
    assert bool(live.left_out) == definition.needs_pairs


def test_a_latency_edge_names_the_gate_and_its_sentence() -> None:
    assert metric("latency").key(0.25) == "latency<250ms"
    assert metric("error_rate").key(0.25) == "error_rate"
    spec = GateSpec.model_validate({"metric": "latency", "slo": "250ms", "max_increase": "20%"})
    judge = gates.start_stage([spec], 0.05, Snapshot(taken_at=0.0), exposure="live")
    assert gates.judge(judge).verdicts[0].sentence().startswith("slow-request rate (>250ms)")


def test_an_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: error_rate, bad_request_rate"):
        metric("timeout_rate")


def test_the_status_table_shows_a_complement_metric_as_what_people_read() -> None:
    from rich.console import Console

    from gray.cli.display import gate_table

    rows = [
        {"gate": name, "metric": name, "outcome": "pass", "unit": "ratio", "counts": {}}
        | {"extra": {"candidate_rate": 0.1, "baseline_rate": 0.05}}
        for name in ("accuracy", "error_rate")
    ]
    console = Console(width=200, record=True)
    console.print(gate_table(rows))
    lines = {line.split()[0]: line for line in console.export_text().splitlines() if line.strip()}
    assert "90.00% vs 95.00%" in lines["accuracy"]  # counted wrong, read right
    assert "10.00% vs 5.00%" in lines["error_rate"]
