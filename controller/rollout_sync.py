"""`gray rollout sync ID`: bring MLflow up to date with the local journal.

Run by hand after a controller warned that MLflow did not take its last events,
and detached by `gray rollback` (`after_operator_end`), which also tells the
plan's webhooks and `on_rollback` hook of the operator's end and tags the
rolled-back candidate in the registry, all off the rollback's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gray.controller import lookup, operator
from gray.controller.errors import GrayError, JournalError
from gray.controller.journal import Journal
from gray.controller.journal.sync import sync_to_remote
from gray.controller.state import Phase

Warn = Callable[[str], None]
OPERATOR_ENDS = (Phase.ROLLED_BACK, Phase.ABORTED)


@dataclass(frozen=True)
class Synced:
    sent: int  # events MLflow lacked
    tagged: bool  # the candidate's registry tag written (after an operator's end)


def sync_rollout(
    rollout_id: str, registry_uri: str | None, on_warning: Warn, *, after_operator_end: bool
) -> Synced:
    """Send the local events MLflow lacks; after an operator's end, first tell the plan's
    webhooks (they need no MLflow), then tag the candidate."""
    journal, registry = lookup.journal_for(rollout_id, registry_uri, on_warning)
    if after_operator_end:
        _announce_operator_end(journal, rollout_id, on_warning)
    if journal.remote is None:
        raise JournalError("the MLflow journal is unavailable; nothing was sent")
    try:
        result = sync_to_remote(journal, rollout_id)
    except JournalError:
        raise
    except Exception as exc:  # MLflow's own errors: the local journal still holds it all
        raise JournalError(f"cannot write rollout {rollout_id} to MLflow: {exc}") from None
    record = journal.local.load(rollout_id)
    ended = record.state if record is not None else None
    if not after_operator_end or registry is None or ended is None:
        return Synced(result.sent, False)
    if ended.phase not in OPERATOR_ENDS:
        return Synced(result.sent, False)
    registry.mark_rolled_back(ended.model, ended.candidate, ended.rollout_id)
    return Synced(result.sent, True)


def _announce_operator_end(journal: Journal, rollout_id: str, on_warning: Warn) -> None:
    """Tell the plan's webhooks and on_rollback hook of an operator's rollback or abort."""
    record = journal.local.load(rollout_id)
    if record is None or not record.plan_text:
        return
    if record.state.phase not in OPERATOR_ENDS:
        return
    try:
        plan = lookup.rollout_plan(record, rollout_id)
    except GrayError as exc:  # an unset ${VAR} in a webhook URL, say
        on_warning(f"webhooks not told of the rollback: {exc.message}")
        return
    for failure in operator.announce_end(journal, record.state, plan):
        on_warning(failure)
