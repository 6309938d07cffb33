"""A finished rollout's report logged to its MLflow run as `report.html`.

The controller does it on the journal's background thread once the rollout
ended (after the final write, so never before a decision), and `gray rollout
sync` does it after an operator's rollback. Without the `report` extra, or when
the page cannot be drawn, a note says so and the rollout is not touched: the
report is an account of the rollout, never a part of it.
"""

from __future__ import annotations

from collections.abc import Callable

from gray.controller.extras import missing_modules
from gray.controller.journal import Journal, RemoteJournal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.journal.mlflow_run import REPORT_ARTIFACT, MlflowJournal
from gray.controller.plan.models import Plan
from gray.controller.report.samples import DisagreeingPairs, from_gateway

Warn = Callable[[str], None]


def missing_extra_note(rollout_id: str) -> str | None:
    """Why no report can be drawn here, or None when the `report` extra is installed."""
    missing = missing_modules("report")
    if not missing:
        return None
    return (
        f"{REPORT_ARTIFACT} not logged to MLflow: drawing it needs gray's 'report' extra "
        f"(missing: {', '.join(missing)}; pip install 'gray-rollout[report]'), then "
        f"`gray rollout report {rollout_id}` writes it"
    )


def mirrored_pairs(plan: Plan, candidate: str) -> DisagreeingPairs | None:
    """Disagreeing pairs from the gateway when the plan mirrors traffic, else None."""
    if not any(stage.mirror > 0 for stage in plan.stages):
        return None
    return from_gateway(plan, candidate)


def finished_report(journal: Journal, plan: Plan, rollout_id: str, on_warning: Warn) -> str | None:
    """The page of an ended rollout from the local journal; None, with a note, when it
    cannot be drawn here."""
    note = missing_extra_note(rollout_id)
    if note is not None:
        on_warning(note)
        return None
    from gray.controller.report import build_report

    record = journal.local.load(rollout_id)
    if record is None:
        return None
    try:
        return build_report(record, plan, mirrored_pairs(plan, record.state.candidate))
    except Exception as exc:  # an account of the rollout must never fail the rollout
        on_warning(f"{REPORT_ARTIFACT} not built: {type(exc).__name__}: {exc}")
        return None


def mlflow_journal(remote: RemoteJournal | None) -> MlflowJournal | None:
    if isinstance(remote, BackgroundRemote):
        remote = remote.remote
    return remote if isinstance(remote, MlflowJournal) else None


def submit_report(
    background: BackgroundRemote, journal: Journal, plan: Plan, rollout_id: str, on_warning: Warn
) -> None:
    """Queue the report behind the journal's last MLflow writes: drawn once, logged with the
    queue's retries, so a controller's exit waits for it no longer than for those writes."""
    shared = mlflow_journal(background)
    if shared is None:
        return
    drawn: list[str | None] = []

    def log() -> None:
        if not drawn:
            drawn.append(finished_report(journal, plan, rollout_id, on_warning))
        if drawn[0] is not None:
            shared.log_report(rollout_id, drawn[0])

    background.submit(REPORT_ARTIFACT, log)


def log_report_now(journal: Journal, plan: Plan, rollout_id: str, on_warning: Warn) -> bool:
    """Draw and log the report in this process (`gray rollout sync`); True when logged."""
    shared = mlflow_journal(journal.remote)
    if shared is None:
        return False
    html = finished_report(journal, plan, rollout_id, on_warning)
    if html is None:
        return False
    shared.log_report(rollout_id, html)
    return True
