"""A rollout's durable state: its phase, where it is in the plan, and why.

The state is a frozen value. The loop makes a new one on every transition and
the journal stores it after each event (the gates' working set once, beside the
events: `journal/latest.py`), so a controller killed at any moment is continued
from the last state written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    STARTING = "starting"  # route for the current stage being written and verified
    RUNNING = "running"  # stage route verified, dwell counting, gates judging
    PAUSED = "paused"  # traffic held, dwell clock stopped, gates still judging
    WAITING_APPROVAL = "waiting_approval"  # stage done, traffic held until approved
    HELD = "held"  # --until-stage reached; traffic held until resumed
    ROLLING_BACK = "rolling_back"  # decided to roll back; the write is in flight
    PROMOTING = "promoting"  # decided to promote; alias move and final route in flight
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    # Promoted, then undone by `gray rollback --to previous`: the alias and the endpoint
    # are back on the previous version. The only phase that may follow another end.
    REVERTED = "reverted"

    @property
    def terminal(self) -> bool:
        return self in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.REVERTED)

    @property
    def holds_traffic(self) -> bool:
        """Phases in which a stage's traffic is in force and nobody is moving it."""
        return self in (Phase.PAUSED, Phase.WAITING_APPROVAL, Phase.HELD)


@dataclass(frozen=True)
class RolloutState:
    rollout_id: str
    plan_name: str
    model: str
    baseline: str  # pinned versions, fixed at start
    candidate: str
    baseline_ref: str  # what the plan asked for ("@champion"), for drift reports
    candidate_ref: str
    epoch: int  # the lease epoch this rollout writes with
    phase: Phase = Phase.STARTING
    stage: int = 0
    started_at: float = 0.0
    stage_started_at: float | None = None  # when the stage's route was verified
    dwell_left: float | None = None  # seconds of dwell left when the clock stopped
    deadline: float | None = None  # when the current dwell (with extensions) ends
    extensions: int = 0
    nodata_since: float | None = None
    origin_candidate_requests: int = 0  # candidate exposures when the stage began
    # Candidate exposures counted in this stage so far, look by look, so an endpoint whose
    # counters restart from zero (a gateway restart) never makes the count go backwards.
    # None in journals written before it existed: then counted from the origin.
    stage_candidate_requests: int | None = None
    judge: dict[str, Any] | None = None  # gates.JudgeState.to_dict()
    last_verdict: dict[str, Any] | None = None  # gates.StageVerdict.to_dict()
    last_look_at: float | None = None
    metrics_failing_since: float | None = None
    until_stage: int | None = None
    resume_after_hold: str | None = None  # the phase to continue with after approval/hold
    rollback_kind: str | None = None  # "rolled_back" or "aborted", while rolling back
    reason: str = ""  # the reason for the latest transition, with numbers
    ended_at: float | None = None
    updated_at: float = 0.0
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # stage results
    retry_of: str | None = None  # the rollout this one retries (`gray rollout retry`)

    def with_(self, **changes: Any) -> RolloutState:
        return replace(self, **changes)

    @property
    def exit_code(self) -> int | None:
        """The CLI exit code this state stands for, or None while running."""
        if self.phase is Phase.PROMOTED:
            return 0
        if self.phase in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.REVERTED):
            return 1
        if self.phase.holds_traffic:
            return 3
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phase"] = self.phase.value
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["phase"] = Phase(values["phase"])
        values["history"] = tuple(values.get("history") or ())
        return cls(**values)
