"""A judge state written by an earlier gray (state.json, a journal's events) still loads,
judges the next look exactly as that gray did, and is written back in the same shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gray.controller import gates
from gray.controller.gates import JudgeState
from gray.controller.types import Snapshot

STORED = Path(__file__).parent / "data" / "judge_state_v1.json"


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(STORED.read_text())
    return data


def test_a_stored_judge_state_judges_the_next_look_as_before(stored: dict[str, Any]) -> None:
    state = JudgeState.from_dict(stored["judge"])
    assert {gate["family"] for gate in stored["judge"]["gates"]} == {"count", "shift", "share"}
    new, verdict = gates.observe(state, Snapshot.from_dict(stored["snapshot"]))
    assert verdict.to_dict() == stored["after"]["verdict"]
    # A source without counts per routing-key group: the rate gates say what they assume.
    rates = [v for v in verdict.verdicts if v.unit in ("ratio", "difference")]
    assert rates and all(v.method == "per_request" for v in rates)
    assert json.loads(json.dumps(new.to_dict())) == stored["after"]["judge"]


def test_a_stored_judge_state_is_written_back_unchanged(stored: dict[str, Any]) -> None:
    state = JudgeState.from_dict(stored["judge"])
    assert json.loads(json.dumps(state.to_dict())) == stored["judge"]
