"""`gray plan show --rps` and `gray plan validate --rps`: what each stage of a plan can detect,
checked on every example plan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.plan.loading import load_plan

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "plans").glob("*.yaml"))
runner = CliRunner()


def detected(path: Path, *options: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["plan", "show", str(path), *options, "-o", "json"])
    assert result.exit_code == 0, result.output
    stages: list[dict[str, Any]] = json.loads(result.stdout)["detectability"]
    return stages


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_plan_says_what_each_stage_catches(path: Path) -> None:
    plan = load_plan(path)
    stages = detected(path, "--rps", "50", "--base-rate", "error=2%")
    assert [s["name"] for s in stages] == [s.name for s in plan.stages]
    by_gate: dict[str, list[dict[str, Any]]] = {}
    for index, stage in enumerate(stages):
        assert stage["candidate_requests"] > 0
        judged = sorted(g["gate"] for g in stage["gates"])
        planned = sorted(g.key for g in plan.stage_gates(index))
        assert set(judged) <= set(planned)  # disagreement only where pairs are mirrored
        for gate in stage["gates"]:
            by_gate.setdefault(gate["gate"], []).append(gate)
            assert gate["power"] == 0.8
            smallest = gate["smallest_detected"]
            assert smallest is None or gate["allowed"] < smallest <= gate["largest_simulated"]
            if gate["median_seconds_at_double"] is not None:
                assert gate["median_seconds_at_double"] <= stage["dwell_seconds"]
                assert gate["power_at_double"] >= 0.5
            assert gate["reaches_margin"] == (gate["passes_alike"] >= 0.8)
    assert {g["base_rate"] for g in by_gate["error_rate"]} == {0.02}  # --base-rate
    if "accuracy" in by_gate:
        assert by_gate["accuracy"][0]["base_rate"] == pytest.approx(0.05)  # 95 % accurate
    # The live stage with the most candidate traffic catches smaller regressions than the
    # one with the least.
    live = [
        (stage["candidate_requests"], gate["smallest_detected"])
        for stage, spec in zip(stages, plan.stages, strict=True)
        if not spec.is_shadow
        for gate in stage["gates"]
        if gate["gate"] == "error_rate"
    ]
    (_, thinnest), (_, thickest) = min(live), max(live)
    assert thickest is not None and (thinnest is None or thickest < thinnest)


@pytest.mark.slow
def test_validate_warns_about_stages_that_cannot_reach_their_margin() -> None:
    path = REPO / "plans" / "cold-start.yaml"
    result = runner.invoke(app, ["plan", "validate", str(path), "--rps", "50", "-o", "json"])
    assert result.exit_code == 0, result.output
    (checked,) = json.loads(result.stdout)["plans"]
    assert checked["valid"] is True
    warnings = checked["warnings"]
    # 0.1 % of 50 requests/s mirrored for an hour: nothing can be shown within a margin.
    shadow = next(w for w in warnings if "(internal-shadow)" in w)
    assert shadow.startswith("stage 1/6 (internal-shadow) cannot reach its own margin at 50 ")
    assert re.search(r"disagreement \(passes 0% of the time; catches ", shadow)
    assert "the stage ends INCONCLUSIVE and policies.inconclusive decides (then: pass)" in (shadow)
    one_percent = next(w for w in warnings if "(internal-1pct)" in w)
    assert re.search(
        r"error_rate \(passes \d+% of the time; catches [\d.]+x or more 80%", one_percent
    )


def test_bad_simulation_options_are_usage_errors() -> None:
    path = str(REPO / "plans" / "incremental.yaml")
    typo = runner.invoke(app, ["plan", "show", path, "--rps", "50", "--base-rate", "erorr=1%"])
    assert typo.exit_code == 2
    assert "expected NAME=RATE with NAME one of error=" in typo.output
    assert "'erorr=1%'" in typo.output
    out_of_range = runner.invoke(app, ["plan", "validate", path, "--rps", "5", "--labelled", "0"])
    assert out_of_range.exit_code == 2
    assert "--labelled" in out_of_range.output
