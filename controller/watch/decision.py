"""Whether the version the plan's candidate alias names now is to be rolled out: a pure
function of what the registry and the journals say, so a watcher that restarts decides
the same way, and two ways of hearing about a move (a poll, a webhook) cannot disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gray.controller.registry.versions import (
    NO_PREPROCESSOR,
    READY,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLOUT_ID,
)
from gray.controller.state import Phase, RolloutState

if TYPE_CHECKING:
    from gray.controller.registry import ModelVersionInfo

UNDONE = (Phase.ROLLED_BACK, Phase.ABORTED, Phase.REVERTED)


class Action(StrEnum):
    START = "start"  # a new version, ready, bound, never rolled out: start its rollout
    WAIT = "wait"  # not now: another rollout runs, or the version is not ready or not bound
    SKIP = "skip"  # this version is settled: rolled back, aborted, reverted or promoted
    IDLE = "idle"  # the candidate alias names the baseline's version: nothing to roll out


@dataclass(frozen=True)
class Decision:
    action: Action
    version: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "version": self.version, "reason": self.reason}


def decide(
    candidate_ref: str,
    baseline: ModelVersionInfo,
    candidate: ModelVersionInfo,
    rollouts: Sequence[RolloutState],
) -> Decision:
    """What to do about `candidate` (the version `candidate_ref` names now), given the
    baseline it would be tested against and every journaled rollout of the model."""
    version, name = candidate.version, candidate.name
    active = [s for s in rollouts if not s.phase.terminal]
    if active:
        running = active[0]
        return Decision(
            Action.WAIT,
            version,
            f"rollout {running.rollout_id} (v{running.baseline} → v{running.candidate}) is "
            f"{running.phase.value}; one rollout per model at a time (if no controller runs "
            f"it any more: gray rollout resume {running.rollout_id}, or gray rollout abort "
            f"{running.rollout_id})",
        )
    if version == baseline.version:
        return Decision(
            Action.IDLE,
            version,
            f"{candidate_ref} names v{version}, the baseline's version: nothing to roll out",
        )
    settled = _settled(candidate, rollouts)
    if settled is not None:
        return Decision(Action.SKIP, version, settled)
    if candidate.status != READY:
        return Decision(
            Action.WAIT, version, f"v{version} is {candidate.status or 'not READY'}, not READY"
        )
    if candidate.preprocessor_sha256 is None:
        return Decision(
            Action.WAIT,
            version,
            f"v{version} has no bound preprocessor, so no endpoint may serve it; bind it: "
            f"gray registry bind {name} {version} PATH (or --none)",
        )
    bound = (
        "declared to need none"
        if candidate.preprocessor_sha256 == NO_PREPROCESSOR
        else f"preprocessor sha256 {candidate.preprocessor_sha256[:12]}…"
    )
    return Decision(
        Action.START,
        version,
        f"{candidate_ref} moved to v{version} ({bound}); rolling it out against "
        f"v{baseline.version}",
    )


def _settled(candidate: ModelVersionInfo, rollouts: Sequence[RolloutState]) -> str | None:
    """Why the candidate's version is not to be started again, or None."""
    version = candidate.version
    mine = sorted(
        (s for s in rollouts if s.candidate == version), key=lambda s: s.started_at, reverse=True
    )
    if mine:
        last = mine[0]
        if last.phase in UNDONE:
            return (
                f"v{version} was {last.phase.value.replace('_', ' ')} by rollout "
                f"{last.rollout_id}; it is not started again unless asked: "
                f"gray rollout retry {last.rollout_id}"
            )
        return f"v{version} was already {last.phase.value} by rollout {last.rollout_id}"
    if TAG_ROLLED_BACK_AT in candidate.tags:
        rollout_id = candidate.tags.get(TAG_ROLLOUT_ID, "")
        return (
            f"v{version} is tagged rolled back ({TAG_ROLLED_BACK_AT} "
            f"{candidate.tags[TAG_ROLLED_BACK_AT]}, rollout {rollout_id or 'unknown'}); it is "
            "not started again unless asked: gray rollout retry "
            f"{rollout_id or 'ID'}"
        )
    return None
