"""Judging a stage: which gates apply, how alpha is split, and one step per look.

Which gates apply to a stage (decided once, at its start, so alpha is split once):

- `live` (the candidate answers users): every gate but `disagreement`, which
  needs mirrored pairs; it applies too when the stage also mirrors
  (`mirrored=True`). Rates compare `snapshot.candidate` with `snapshot.baseline`.
- `shadow` (weight 0, mirror > 0): every gate. Rates compare the two versions'
  answers to the same mirrored requests (`snapshot.shadow`); the gateway scores
  feedback labels against both answers, so accuracy applies here too.

A stage that gives the baseline no traffic at all (weight 100 %) has nothing to
compare with at the same time; its rate gates then compare the candidate's own
rate with the baseline's rate from before the stage (the origin snapshot's
counters), which assumes the rates did not move in between.

A gate with no data for the candidate is NODATA, never left out after the
fact: a plan that asks for accuracy but never sends labels holds the stage
rather than passing it unjudged.

Alpha: a gate's own `alpha` if it sets one; the stage's alpha is split equally
over the other applicable gates. A stage FAILs when any gate fails, so its
false-rollback rate is at most the sum of the gates' alphas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gray.controller.gates.config import GateConfig, GateFields
from gray.controller.gates.families import GateFamily, gate_from_dict, start_gate
from gray.controller.gates.increments import EXPOSURES, increment
from gray.controller.gates.metrics import metric
from gray.controller.gates.verdict import StageVerdict
from gray.controller.types import Snapshot

STATE_VERSION = 1


@dataclass(frozen=True)
class JudgeState:
    """Everything needed to go on judging a stage, JSON-safe and of fixed size."""

    exposure: str
    alpha: float
    origin_taken_at: float
    previous: Snapshot  # the last snapshot seen; the next look counts from it
    gates: tuple[GateFamily, ...]
    left_out: tuple[tuple[str, str], ...] = ()  # (gate key, why it does not apply)
    mirrored: bool = False
    looks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "exposure": self.exposure,
            "alpha": self.alpha,
            "origin_taken_at": self.origin_taken_at,
            "previous": self.previous.to_dict(),
            "gates": [gate.to_dict() for gate in self.gates],
            "left_out": [list(item) for item in self.left_out],
            "mirrored": self.mirrored,
            "looks": self.looks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeState:
        version = int(data.get("version", STATE_VERSION))
        if version != STATE_VERSION:
            raise ValueError(f"judge state version {version} is not {STATE_VERSION}")
        return cls(
            exposure=str(data["exposure"]),
            alpha=float(data["alpha"]),
            origin_taken_at=float(data["origin_taken_at"]),
            previous=Snapshot.from_dict(data["previous"]),
            gates=tuple(gate_from_dict(gate) for gate in data.get("gates", [])),
            left_out=tuple((str(k), str(why)) for k, why in data.get("left_out", [])),
            mirrored=bool(data.get("mirrored", False)),
            looks=int(data.get("looks", 0)),
        )


def start_stage(
    gates: Sequence[GateFields],
    alpha: float,
    origin: Snapshot,
    *,
    exposure: str,
    mirrored: bool = False,
) -> JudgeState:
    """A fresh judge for a stage whose traffic is counted from `origin` on."""
    if exposure not in EXPOSURES:
        raise ValueError(f"exposure must be one of {EXPOSURES}, got {exposure!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    applicable: list[GateFields] = []
    left_out: list[tuple[str, str]] = []
    for gate in gates:
        if not gate.enabled:
            continue
        reason = _not_applicable(gate.metric, exposure, mirrored)
        if reason:
            left_out.append((gate.key, reason))
        else:
            applicable.append(gate)
    sharing = [gate for gate in applicable if gate.alpha is None]
    share = alpha / len(sharing) if sharing else alpha
    before = origin.shadow.baseline if exposure == "shadow" else origin.baseline
    states = tuple(
        start_gate(
            GateConfig.from_spec(gate, gate.alpha if gate.alpha is not None else share), before
        )
        for gate in applicable
    )
    return JudgeState(
        exposure=exposure,
        alpha=alpha,
        origin_taken_at=origin.taken_at,
        previous=origin,
        gates=states,
        left_out=tuple(left_out),
        mirrored=mirrored,
    )


def observe(state: JudgeState, snapshot: Snapshot) -> tuple[JudgeState, StageVerdict]:
    """Judge everything accrued since the stage began, given the newest cumulative snapshot."""
    seen = increment(state.previous, snapshot, state.exposure)
    gates = tuple(gate.update(seen) for gate in state.gates)
    new = replace(state, previous=snapshot, gates=gates, looks=state.looks + 1)
    return new, judge(new)


def judge(state: JudgeState) -> StageVerdict:
    """The stage's verdict from what the judge holds, without a new look."""
    return StageVerdict.combine(tuple(gate.verdict() for gate in state.gates))


def _not_applicable(metric_name: str, exposure: str, mirrored: bool) -> str:
    if metric(metric_name).needs_pairs and exposure == "live" and not mirrored:
        return "a live stage without mirrored traffic has no pairs to compare"
    return ""
