"""A stage that passes as inconclusive says what it could have missed, from what it saw."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.console import Console

from gray.cli.display import RolloutView

from .conftest import Harness

# A margin far tighter than a few seconds of traffic can show: the gate stays undecided.
TIGHT = """\
name: tight-test
model: {name: fraud, baseline: "@champion", candidate: "@challenger"}
interval: 1s
gates:
  - {metric: error_rate, max_increase: 5%}
stages:
  - {weight: 10%, dwell: 6s}
policies:
  inconclusive: {extend: 2s, max_extensions: 1, then: pass}
promote: {alias: champion, keep_previous_as: previous-champion}
"""


def passed_by_policy(tmp_path: Path, rps: int) -> tuple[Harness, Any]:
    harness = Harness(tmp_path, TIGHT)
    harness.metrics.rps = rps
    view = RolloutView(harness.plan)
    runner = harness.runner()
    runner.on_event = view.on_event
    result = runner.run(harness.start())
    assert result.exit_code == 0, result.reason
    events = harness.journal.load("fraud-test-0001").events
    return view, next(e for e in events if e.event == "stage_passed")


def test_a_stage_passed_as_inconclusive_states_the_regression_it_could_have_missed(
    tmp_path: Path,
) -> None:
    view, passed = passed_by_policy(tmp_path / "a", 10000)
    (missed,) = passed.data["missed"]
    assert missed["gate"] == "error_rate" and missed["unit"] == "ratio"
    smallest = missed["smallest_detected"]
    assert 1.05 < smallest < 4.0
    sentence = missed["sentence"]
    assert sentence.startswith(
        f"error rate: a regression of {smallest:.3g}x or more would have been caught 80 % "
        "of the time with the 8,000 candidate requests it saw at the baseline's error rate"
    )
    assert "a smaller one could have passed unnoticed" in sentence
    assert f"plan says pass: {passed.data['verdict']['sentence']}" in passed.reason
    assert f"what it could have missed: {sentence}" in passed.reason
    # The live display's recent decisions carry the same words.
    console = Console(width=400, record=True)
    console.print(view)
    assert "could have missed: error rate: a regression of" in console.export_text()

    # A quarter of the traffic: only a larger regression would have been caught.
    _, thinner = passed_by_policy(tmp_path / "b", 2500)
    (fewer,) = thinner.data["missed"]
    assert "the 2,000 candidate requests it saw" in fewer["sentence"]
    assert fewer["smallest_detected"] > smallest
    assert re.search(r"a regression of [\d.]+x or more", fewer["sentence"])
