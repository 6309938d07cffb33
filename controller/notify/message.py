"""What a notification says: the facts of one rollout event, the same for every sender.

A rollback carries the failing gates' sentences (estimate, confidence interval and the
allowed margin), the stage and the share of traffic the candidate had, and the
commands that look further; every sender words these facts its own way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gray.controller.plan.models import Plan
from gray.controller.plan.units import format_share
from gray.controller.redact import redact
from gray.controller.state import RolloutState

MESSAGE_VERSION = 1
Number = float | str | None


@dataclass(frozen=True)
class StageFacts:
    number: int  # 1-based
    stages: int
    name: str
    weight: float  # the share the candidate answers
    mirror: float  # the share copied to it

    @property
    def traffic(self) -> str:
        """`5% of requests answered by the candidate`, with the mirror when there is one."""
        parts = []
        if self.weight:
            parts.append(f"{format_share(self.weight)} of requests answered by the candidate")
        if self.mirror:
            parts.append(f"{format_share(self.mirror)} mirrored to it")
        return ", ".join(parts) or "no candidate traffic"

    @property
    def label(self) -> str:
        return f"stage {self.number}/{self.stages} ({self.name})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "stages": self.stages,
            "name": self.name,
            "weight": self.weight,
            "mirror": self.mirror,
        }


@dataclass(frozen=True)
class GateFacts:
    """One gate's last verdict: the sentence and the numbers in it (as the journal keeps
    them: an infinite bound is "inf")."""

    gate: str
    outcome: str
    sentence: str
    estimate: Number
    interval: tuple[Number, Number] | None
    allowed: Number

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "outcome": self.outcome,
            "sentence": self.sentence,
            "estimate": self.estimate,
            "interval": list(self.interval) if self.interval else None,
            "allowed": self.allowed,
        }


@dataclass(frozen=True)
class Message:
    event: str  # start stage approval pause rollback promote abort
    rollout_id: str
    plan: str
    model: str
    baseline: str
    candidate: str
    text: str  # the decision's sentence, redacted
    stage: StageFacts | None
    failing_gates: tuple[GateFacts, ...]  # for a rollback: the gates that failed
    retry_of: str | None
    sent_at: float

    @property
    def title(self) -> str:
        what = {
            "start": "started",
            "stage": "moved to the next stage",
            "approval": "waits for approval",
            "pause": "paused",
            "rollback": "rolled back",
            "promote": "promoted",
            "abort": "aborted",
        }.get(self.event, self.event)
        return f"gray: {self.model} v{self.candidate} {what}"

    @property
    def commands(self) -> tuple[str, ...]:
        return (f"gray rollout report {self.rollout_id}", f"gray rollout status {self.rollout_id}")

    def lines(self, commands: bool = True) -> list[str]:
        """The message as plain lines: the sentence, the failing gates, where, the commands."""
        lines = [self.text]
        lines += [f"{gate.gate}: {gate.sentence}" for gate in self.failing_gates]
        if self.stage is not None:
            lines.append(f"{self.stage.label}: {self.stage.traffic}")
        lines.append(
            f"rollout {self.rollout_id} of {self.model}: v{self.baseline} → v{self.candidate}"
        )
        if commands:
            lines += [f"look further: {command}" for command in self.commands]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MESSAGE_VERSION,
            "event": self.event,
            "title": self.title,
            "rollout_id": self.rollout_id,
            "plan": self.plan,
            "model": self.model,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "text": self.text,
            "stage": self.stage.to_dict() if self.stage else None,
            "failing_gates": [gate.to_dict() for gate in self.failing_gates],
            "commands": list(self.commands),
            "retry_of": self.retry_of,
            "sent_at": self.sent_at,
        }


def message_for(event: str, text: str, plan: Plan, state: RolloutState) -> Message:
    """The facts of `event` (`text` is the loop's sentence for it) in `state`."""
    return Message(
        event=event,
        rollout_id=state.rollout_id,
        plan=plan.name,
        model=state.model,
        baseline=state.baseline,
        candidate=state.candidate,
        text=redact(text),
        stage=_stage(plan, state),
        failing_gates=_failing_gates(state) if event in ("rollback", "abort") else (),
        retry_of=state.retry_of,
        sent_at=time.time(),
    )


def _stage(plan: Plan, state: RolloutState) -> StageFacts | None:
    if not 0 <= state.stage < len(plan.stages):
        return None
    spec = plan.stages[state.stage]
    return StageFacts(state.stage + 1, len(plan.stages), spec.name, spec.weight, spec.mirror)


def _failing_gates(state: RolloutState) -> tuple[GateFacts, ...]:
    """The gates whose last verdict failed (none: the rollback had another cause, which
    the sentence names)."""
    verdicts = (state.last_verdict or {}).get("verdicts") or []
    failed = []
    for verdict in verdicts:
        if verdict.get("outcome") != "fail":
            continue
        interval = verdict.get("interval")
        failed.append(
            GateFacts(
                gate=str(verdict.get("gate", "")),
                outcome="fail",
                sentence=redact(str(verdict.get("sentence", ""))),
                estimate=_number(verdict.get("estimate")),
                interval=(
                    (_number(interval[0]), _number(interval[1]))
                    if isinstance(interval, list) and len(interval) == 2
                    else None
                ),
                allowed=_number(verdict.get("allowed")),
            )
        )
    return tuple(failed)


def _number(value: object) -> Number:
    return value if isinstance(value, int | float | str) else None
