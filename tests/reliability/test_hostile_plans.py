"""Hostile plans: every one is refused with file:line:col and exit 2, in well under a second.

Alias bombs, self-referencing aliases, deep nesting, huge files, numbers with
hundreds of digits and durations out of any sane range must neither hang, eat
memory, nor escape as a Python traceback. A seeded fuzzer mutates a valid plan
and checks that parsing only ever answers with a Plan or a PlanError.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.errors import PlanError
from gray.controller.plan.loading import load_plan, parse_plan
from gray.controller.plan.source import MAX_ALIASES, MAX_DEPTH, MAX_PLAN_BYTES, MAX_VALUES

runner = CliRunner()

VALID = """\
name: fraud
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
interval: 30s
gates:
  - {metric: error_rate, max_increase: 10%}
  - {metric: latency, slo: 250ms, max_increase: 20%}
stages:
  - {weight: 5%, dwell: 5m}
  - {weight: 50%, dwell: 30m, min_requests: 500}
policies:
  inconclusive: {extend: 15m}
  no_data: {hold: 5m}
"""


def alias_bomb(levels: int, width: int = 9) -> str:
    """The billion-laughs shape: each level lists the previous one `width` times."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return VALID + "\n".join(lines) + "\n"


HOSTILE: list[tuple[str, str, str]] = [
    # (case id, plan text, words the problem must contain)
    ("alias-bomb-6", alias_bomb(6), "aliases"),
    ("alias-bomb-9", alias_bomb(9), "aliases"),
    ("self-alias", VALID + "x: &x [*x]\n", "refers to itself"),
    ("self-alias-mapping", VALID + "x: &x {y: *x}\n", "refers to itself"),
    ("deep-nesting", VALID + "x: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
    ("deep-block-nesting", VALID + "".join(f"{'  ' * i}k{i}:\n" for i in range(200)), "nested"),
    ("too-many-aliases", VALID + "l: &l 1\nm: [" + ", ".join(["*l"] * 500) + "]\n", "aliases"),
    ("huge-file", VALID + "# " + "x" * (MAX_PLAN_BYTES + 10) + "\n", "larger than"),
    ("dwell-400-zeros", VALID.replace("dwell: 5m", "dwell: 1" + "0" * 400 + "s"), "dwell"),
    ("dwell-year-zillions", VALID.replace("dwell: 5m", "dwell: 99999999999999999999999d"), "30d"),
    ("interval-1ms", VALID.replace("interval: 30s", "interval: 1ms"), "1s"),
    ("extend-too-long", VALID.replace("extend: 15m", "extend: 400d"), "extend"),
    ("hold-infinite", VALID.replace("hold: 5m", "hold: 1" + "0" * 400 + "h"), "hold"),
    ("slo-too-long", VALID.replace("slo: 250ms", "slo: 2h"), "slo"),
    ("timeout-zero-ish", VALID + 'router: {url: "http://h:1", timeout: 1ms}\n', "timeout"),
    (
        "min-requests-5000-digits",
        VALID.replace("min_requests: 500", "min_requests: 1" + "0" * 5000),
        "min_requests",
    ),
    (
        "min-samples-huge",
        VALID.replace("max_increase: 10%}", "max_increase: 10%, min_samples: 1" + "0" * 30 + "}"),
        "min_samples",
    ),
    ("weight-1e400", VALID.replace("weight: 5%", "weight: 1e400"), "share"),
    ("complex-key", VALID + "? [a, b]\n: 1\n", "key"),
    (
        "python-tag",
        VALID + "description: !!python/object/apply:os.system ['true']\n",
        "description: expected text",
    ),
    ("bad-base64", VALID + 'description: !!binary "*not base64*"\n', "cannot read"),
    ("impossible-date", VALID + "description: 2026-13-45\n", "cannot read"),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_plan_is_refused_with_a_position_quickly(text: str, words: str) -> None:
    started = time.perf_counter()
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml", environ={})
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"took {elapsed:.2f}s"  # a blow-up takes minutes; 2 s spares load
    problems = caught.value.problems
    assert problems and all(p.line is not None and p.column is not None for p in problems)
    assert any(words in p.render() for p in problems), [p.render() for p in problems]


def test_cli_validate_exits_2_with_file_line_col(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(alias_bomb(9))
    started = time.perf_counter()
    result = runner.invoke(app, ["plan", "validate", str(plan)])
    assert time.perf_counter() - started < 1.0
    assert result.exit_code == 2, result.output
    assert f"{plan}:" in result.output and "aliases" in result.output
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text(VALID + "x: &x [*x]\n")
    result = runner.invoke(app, ["plan", "validate", str(recursive)])
    assert result.exit_code == 2 and f"{recursive}:13:" in result.output, result.output


def test_sane_plans_with_anchors_and_the_limits_still_parse() -> None:
    shared = VALID.replace(
        "gates:\n",
        "x-margin: &margin 10%\ngates:\n",
    ).replace("max_increase: 10%}", "max_increase: *margin}")
    with pytest.raises(PlanError) as caught:  # the anchor holder itself is an unknown field
        parse_plan(shared, "plan.yaml", environ={})
    assert [p.field for p in caught.value.problems] == ["x-margin"]
    edges = (
        VALID.replace("interval: 30s", "interval: 1s")
        .replace("dwell: 5m", "dwell: 30d")
        .replace("slo: 250ms", "slo: 1ms")
    )
    plan = parse_plan(edges, "plan.yaml", environ={})
    assert plan.interval == 1.0 and plan.stages[0].dwell == 30 * 86400
    assert MAX_ALIASES >= 50 and MAX_DEPTH >= 20 and MAX_VALUES >= 10_000


FIELDS = ["interval", "dwell", "slo", "extend", "hold", "weight", "min_requests", "name"]


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_fuzzed_plans_only_ever_parse_or_raise_plan_error(data: st.DataObject) -> None:
    """Random edits of a valid plan: a value replaced, bytes inserted, lines cut or repeated."""
    text = VALID
    seed = data.draw(st.integers(0, 2**32 - 1))
    chooser = random.Random(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = chooser.choice(["value", "insert", "cut", "repeat"])
        if kind == "value":
            field = chooser.choice(FIELDS)
            junk = data.draw(
                st.one_of(
                    st.text(max_size=30),
                    st.integers().map(str),
                    st.floats().map(str),
                    st.sampled_from(["&a [*a]", "*nope", "!!binary x", "[[[[", "{", "1e999s"]),
                )
            )
            text = text.replace(f"{field}: ", f"{field}: {junk} #", 1)
        elif kind == "insert":
            at = chooser.randrange(len(text))
            text = text[:at] + data.draw(st.text(max_size=8)) + text[at:]
        elif kind == "cut":
            lines = text.splitlines(keepends=True)
            del lines[chooser.randrange(len(lines))]
            text = "".join(lines)
        else:
            lines = text.splitlines(keepends=True)
            line = chooser.choice(lines)
            text = text.replace(line, line * chooser.randint(2, 5), 1)
    try:
        parse_plan(text, "plan.yaml", environ={})
    except PlanError as error:
        assert all(p.line is not None for p in error.problems), error.message


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as file:
        file.truncate(4 * 1024**3)  # sparse: 4 GB of zero bytes, no disk used
    started = time.perf_counter()
    with pytest.raises(PlanError) as caught:
        load_plan(huge)
    assert time.perf_counter() - started < 1.0
    assert "larger than" in caught.value.problems[0].message


def test_bytes_that_are_not_utf8_are_refused_at_their_line(tmp_path: Path) -> None:
    plan = tmp_path / "latin1.yaml"
    plan.write_bytes(VALID.encode().replace(b"interval: 30s", b"interval: 30s # caf\xe9"))
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    problem = caught.value.problems[0]
    assert (problem.line, problem.column) == (3, 20)
    assert "UTF-8" in problem.message
