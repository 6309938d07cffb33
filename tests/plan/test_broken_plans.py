"""Broken plans: each gives its message at the right line, and all problems come at once."""

from __future__ import annotations

import pytest

from gray.controller.errors import PlanError
from gray.controller.plan.loading import parse_plan

VALID = """\
name: fraud
model:
  name: fraud
  baseline: "@champion"
  candidate: "@challenger"
interval: 30s
gates:
  - {metric: error_rate, max_increase: 10%}
stages:
  - {weight: 5%, dwell: 5m}
  - {weight: 50%, dwell: 5m}
"""

# (case id, plan text, expected line, expected field path, expected words in the message)
BROKEN: list[tuple[str, str, int, str, str]] = [
    (
        "typo-in-stage-field",
        VALID.replace("dwell: 5m}\n  - {weight: 50%", "dwel: 5m}\n  - {weight: 50%"),
        10,
        "stages[0].dwel",
        "unknown field 'dwel'; did you mean 'dwell'?",
    ),
    ("unknown-top-level", VALID + "intervall: 1m\n", 12, "intervall", "did you mean 'interval'?"),
    (
        "unknown-metric",
        VALID.replace("metric: error_rate", "metric: eror_rate"),
        8,
        "gates[0].metric",
        "did you mean 'error_rate'?",
    ),
    (
        "bad-duration",
        VALID.replace("interval: 30s", "interval: 30 seconds"),
        6,
        "interval",
        "expected a duration",
    ),
    (
        "duration-without-unit",
        VALID.replace("dwell: 5m}\n  - {weight: 50%", "dwell: 5}\n  - {weight: 50%"),
        10,
        "stages[0].dwell",
        "a duration needs a unit",
    ),
    (
        "share-over-one",
        VALID.replace("weight: 50%", "weight: 50"),
        11,
        "stages[1].weight",
        "write 50%",
    ),
    (
        "share-over-100-percent",
        VALID.replace("weight: 50%", "weight: 150%"),
        11,
        "stages[1].weight",
        "between 0% and 100%",
    ),
    (
        "negative-share",
        VALID.replace("weight: 5%", "weight: -5%"),
        10,
        "stages[0].weight",
        "between 0% and 100%",
    ),
    (
        "missing-model",
        "\n".join(VALID.splitlines()[:1] + VALID.splitlines()[5:]) + "\n",
        1,
        "model",
        "required field 'model' is missing",
    ),
    (
        "missing-dwell",
        VALID.replace("{weight: 50%, dwell: 5m}", "{weight: 50%}"),
        11,
        "stages[1].dwell",
        "required field 'dwell' is missing",
    ),
    (
        "baseline-equals-candidate",
        VALID.replace('"@challenger"', '"@champion"'),
        5,
        "model.candidate",
        "same as baseline",
    ),
    (
        "interval-longer-than-dwell",
        VALID.replace("interval: 30s", "interval: 10m"),
        10,
        "stages[0].dwell",
        "shorter than the plan's interval",
    ),
    (
        "weight-goes-down",
        VALID.replace("weight: 50%", "weight: 2%"),
        11,
        "stages[1].weight",
        "allow_decrease",
    ),
    (
        "neither-weight-nor-mirror",
        VALID.replace("{weight: 5%, dwell: 5m}", "{dwell: 5m}"),
        10,
        "stages[0]",
        "needs a weight",
    ),
    (
        "alias-without-at",
        VALID.replace('"@challenger"', "challenger"),
        5,
        "model.candidate",
        'write "@challenger"',
    ),
    ("version-zero", VALID.replace('"@challenger"', "0"), 5, "model.candidate", "starts at 1"),
    (
        "gate-without-margin",
        VALID.replace("{metric: error_rate, max_increase: 10%}", "{metric: error_rate}"),
        8,
        "gates[0]",
        "needs its allowed margin",
    ),
    (
        "latency-without-slo",
        VALID.replace(
            "{metric: error_rate, max_increase: 10%}", "{metric: latency, max_increase: 20%}"
        ),
        8,
        "gates[0]",
        "needs 'slo'",
    ),
    (
        "slo-on-error-rate",
        VALID.replace("max_increase: 10%}", "max_increase: 10%, slo: 1s}"),
        8,
        "gates[0].slo",
        "applies only to latency",
    ),
    (
        "wrong-margin-kind",
        VALID.replace("max_increase: 10%}", "max_increase: 10%, max_decrease: 1%}"),
        8,
        "gates[0].max_decrease",
        "does not apply to a error_rate gate",
    ),
    ("alpha-out-of-range", VALID + "alpha: 0.7\n", 12, "alpha", "below 0.5"),
    (
        "approval-not-bool",
        VALID.replace("{weight: 50%, dwell: 5m}", "{weight: 50%, dwell: 5m, approval: maybe}"),
        11,
        "stages[1].approval",
        "expected true or false",
    ),
    (
        "min-requests-negative",
        VALID.replace("{weight: 50%, dwell: 5m}", "{weight: 50%, dwell: 5m, min_requests: -3}"),
        11,
        "stages[1].min_requests",
        "at least 0",
    ),
    (
        "bad-cidr",
        VALID.replace(
            "{weight: 5%, dwell: 5m}", "{weight: 5%, dwell: 5m, audience: {cidr: [10.0.0.0/33]}}"
        ),
        10,
        "stages[0].audience.cidr[0]",
        "expected a network",
    ),
    (
        "unset-variable",
        VALID + 'registry: {uri: "${GRAY_TEST_UNSET_VARIABLE}"}\n',
        12,
        "registry.uri",
        "GRAY_TEST_UNSET_VARIABLE is not set",
    ),
    (
        "router-type-unknown",
        VALID + "router: {type: kserv}\n",
        12,
        "router.type",
        "expected one of gateway",
    ),
    (
        "no-stages",
        VALID.split("stages:")[0] + "stages: []\n",
        9,
        "stages",
        "expected at least one entry",
    ),
    ("duplicate-key", VALID + "interval: 1m\n", 12, "interval", "given twice (first on line 6)"),
    (
        "duplicate-stage-name",
        VALID.replace("{weight: 50%, dwell: 5m}", "{name: 5%, weight: 50%, dwell: 5m}"),
        11,
        "stages[1].name",
        "used twice",
    ),
    (
        "not-yaml",
        VALID.replace("  - {weight: 50%, dwell: 5m}", "  - {weight: 50%, dwell: 5m"),
        12,
        "",
        "not valid YAML",
    ),
    (
        "stage-gate-unknown-metric",
        VALID.replace(
            "{weight: 50%, dwell: 5m}",
            "{weight: 50%, dwell: 5m, gates: [{metric: accurcy, max_decrease: 1%}]}",
        ),
        11,
        "stages[1].gates[0].metric",
        "did you mean 'accuracy'?",
    ),
    (
        "notify-not-a-url",
        VALID + "notify: [{url: slack-channel}]\n",
        12,
        "notify[0].url",
        "webhook URL",
    ),
    (
        "preprocessor-both-bindings",
        VALID.replace(
            '  candidate: "@challenger"\n',
            '  candidate: "@challenger"\n  preprocessor: {artifact: p, registered_model: q}\n',
        ),
        6,
        "model.preprocessor",
        "exactly one of",
    ),
    ("top-level-list", "- a\n- b\n", 1, "", "expected a mapping of plan fields"),
    ("empty-file", "", 1, "", "the file is empty"),
    (
        "bad-plan-name",
        VALID.replace("name: fraud\nmodel", "name: 'fraud plan!'\nmodel"),
        1,
        "name",
        "expected letters, digits",
    ),
    (
        "stage-min-dwell-over-dwell",
        VALID.replace("{weight: 50%, dwell: 5m}", "{weight: 50%, dwell: 5m, min_dwell: 6m}"),
        11,
        "stages[1].min_dwell",
        "min_dwell 6m is longer than the stage's dwell 5m",
    ),
    (
        "plan-min-dwell-over-a-stage-dwell",
        VALID.replace("interval: 30s", "interval: 30s\nmin_dwell: 10m"),
        7,
        "min_dwell",
        "longer than the dwell of stage '5%' (5m)",
    ),
    (
        "promote-same-aliases",
        VALID + "promote: {alias: champion, keep_previous_as: champion}\n",
        12,
        "promote.keep_previous_as",
        "must differ",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_plan_is_reported_with_line_field_and_reason(
    text: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml", environ={})
    problems = caught.value.problems
    matching = [p for p in problems if words in p.message]
    assert matching, f"no problem mentions {words!r}: {[p.render() for p in problems]}"
    problem = matching[0]
    assert problem.line == line, problem.render()
    assert problem.field == field, problem.render()
    assert problem.render().startswith(f"plan.yaml:{line}")


def test_there_are_at_least_25_broken_plans() -> None:
    assert len(BROKEN) >= 25


def test_valid_base_plan_parses() -> None:
    plan = parse_plan(VALID, "plan.yaml", environ={})
    assert [s.name for s in plan.stages] == ["5%", "50%"]
    assert plan.stages[0].weight == pytest.approx(0.05)
    assert plan.stages[0].dwell == 300
    assert plan.interval == 30


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = (
        VALID.replace("dwell: 5m}\n  - {weight: 50%", "dwel: 5m}\n  - {weight: 50%")
        .replace("metric: error_rate", "metric: eror_rate")
        .replace("interval: 30s", "interval: soon")
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml", environ={})
    lines = sorted({p.line for p in caught.value.problems})
    assert lines == [6, 8, 10]
    assert "4 problems" in str(caught.value)
