"""`gray rollout retry ID`: a new rollout of the versions an ended rollout tested.

The new rollout is started from the old one's plan as journaled, with its baseline and
candidate written as the version numbers the old one pinned (so the new journal's plan
says what it tests, and a resume reads the same). It takes a new id; its state and its
`started` event name the old one (`retry_of`), and the old journal gets a `retried`
event naming the new one. Only a rollout that was rolled back, aborted or reverted can
be retried: a running one is still deciding, a promoted one has nothing left to try.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gray.controller.errors import ConfigError, GrayError, RolloutError
from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.state import Phase, RolloutState

RETRIABLE = (Phase.ROLLED_BACK, Phase.ABORTED, Phase.REVERTED)
RETRY_PLAN_FILE = "retry-plan.yaml"


@dataclass(frozen=True)
class RetryTarget:
    old: RolloutState
    plan_text: str  # the old plan, its two versions pinned


def retry_target(old: RolloutState, plan_text: str) -> RetryTarget:
    """What a retry of `old` starts; RolloutError when `old` cannot be retried."""
    if old.phase not in RETRIABLE:
        what = "is still running" if not old.phase.terminal else f"ended {old.phase.value}"
        raise RolloutError(
            f"rollout {old.rollout_id} {what}; only a rollout that was rolled back, aborted "
            "or reverted can be retried"
        )
    pinned = pinned_plan_text(plan_text, old.baseline, old.candidate, f"{old.rollout_id}/plan.yaml")
    return RetryTarget(old, pinned)


def pinned_plan_text(text: str, baseline: str, candidate: str, filename: str) -> str:
    """`text` with `model.baseline` and `model.candidate` replaced by the two version
    numbers, comments, variables and layout kept."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: cannot read the journaled plan: {exc}") from None
    model = _child(root, "model")
    if not isinstance(model, yaml.MappingNode):
        raise ConfigError(f"{filename}: the journaled plan has no model block to pin")
    spans = []
    for key, version in (("baseline", baseline), ("candidate", candidate)):
        node = _child(model, key)
        if not isinstance(node, yaml.ScalarNode):
            raise ConfigError(f"{filename}: model.{key} is not a plain value; cannot pin it")
        spans.append((node.start_mark.index, node.end_mark.index, f'"{version}"'))
    for start, end, value in sorted(spans, reverse=True):
        text = text[:start] + value + text[end:]
    return text


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            if isinstance(name, yaml.ScalarNode) and name.value == key:
                return value
    return None


def write_retry_plan(rollout_id: str, target: RetryTarget) -> Path:
    """The pinned plan, beside the new rollout's journal, for the ordinary start path."""
    folder = LocalJournal().root / rollout_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RETRY_PLAN_FILE
    path.write_text(target.plan_text, encoding="utf-8")
    return path


def record_retry(journal: Journal, old_id: str, new_id: str) -> None:
    """Tell the old rollout's journal that `new_id` retries it. Only where this machine
    journals the old rollout: a lone event would stand for the whole rollout in a local
    journal that lacks the rest. The new rollout names the old one either way."""
    try:
        old = journal.local.load(old_id)
        if old is None or not old.events:
            return
        journal.append(old.state, EventKind.RETRIED, f"retried as {new_id}", {"retry": new_id})
    except GrayError:  # the link in the new rollout's state still finds it
        return


def retries_of(states: list[RolloutState], rollout_id: str) -> list[RolloutState]:
    """The rollouts that retried `rollout_id`, newest first."""
    found = [s for s in states if s.retry_of == rollout_id]
    return sorted(found, key=lambda s: s.started_at, reverse=True)
