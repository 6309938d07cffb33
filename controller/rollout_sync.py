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
from gray.controller.journal import Journal, RolloutRecord
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
    tagged = after_operator_end and ended is not None and ended.phase in OPERATOR_ENDS
    if tagged and registry is not None and ended is not None:
        registry.mark_rolled_back(ended.model, ended.candidate, ended.rollout_id)
    tagged = tagged and registry is not None
    if record is not None and record.state.phase.terminal:
        _log_report(journal, record, on_warning)
    return Synced(result.sent, tagged)


def _log_report(journal: Journal, record: RolloutRecord, on_warning: Warn) -> None:
    """The ended rollout's report.html in its MLflow run, as a controller logs it at its end
    (an operator's rollback ends a rollout without one)."""
    from gray.controller.report.artifact import log_report_now

    rollout_id = record.state.rollout_id
    try:
        log_report_now(journal, lookup.rollout_plan(record, rollout_id), rollout_id, on_warning)
    except Exception as exc:  # the events are in MLflow; the report is an extra
        on_warning(f"report.html not logged to MLflow: {exc}")


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
