"""`gray rollback`: the on-call engineer's one command to undo a rollout."""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

import typer

from gray.cli import rollback_first
from gray.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    error_console,
    reported_errors,
)
from gray.controller.errors import ConfigError, GrayError, RolloutNotFoundError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.state import RolloutState
from gray.controller.types import Applied

if TYPE_CHECKING:
    from gray.controller.operator import Recorded
    from gray.controller.plan.models import Plan
    from gray.controller.routers.base import Router

HELP = """Send all traffic back to the baseline now, from any machine.

MODEL_OR_ID is a rollout id, or a model name (its active rollout is used; with
none, the endpoint given by --router-url or $GRAY_GATEWAY_URL is rolled back).
One fenced write: the endpoint takes a newer lease epoch, so a controller that
still runs, hangs or comes back cannot push candidate traffic again. The write
comes first; the journal follows, and MLflow (the shared journal and the
registry tag) is brought up to date in the background by `gray rollout sync`.
Rolling back again is harmless: the journal keeps one terminal event.

A promoted rollout has no candidate share to take back: plain `gray rollback`
refuses it (exit 2, nothing changed). With --to previous after a promotion, the
alias moves back and the endpoint serves the previous version.

Exit codes: 0 traffic is on the baseline; 2 bad input, or refused with nothing
changed; 4 the endpoint could not be reached (nothing changed).

Examples:

\b
  gray rollback fraud-20261125-101500-3fa2 --reason "p99 doubled"
  gray rollback fraud --reason "pager"
  gray rollback fraud --to previous --registry-uri http://mlflow:5000
  gray rollback fraud --router-url http://10.0.0.5:8080 --output json
"""


def rollback(
    model_or_id: str = typer.Argument(..., metavar="MODEL_OR_ID"),
    reason: str = typer.Option("", "--reason", help="Why, for the journal and the registry."),
    to: str | None = typer.Option(None, "--to", help="`previous`: also move the alias back."),
    registry_uri: str | None = typer.Option(None, "--registry-uri", help="MLflow registry."),
    router_url: str | None = typer.Option(
        None, "--router-url", help="Endpoint to roll back when no rollout names one."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    if to not in (None, "previous"):
        with reported_errors(output):
            raise ConfigError(f"--to takes only 'previous', got {to!r}")
    perform_rollback(model_or_id, reason, to == "previous", registry_uri, router_url, output)


rollback.__doc__ = HELP


def perform_rollback(
    model_or_id: str,
    reason: str,
    to_previous: bool,
    registry_uri: str | None,
    router_url: str | None,
    output: OutputFormat,
    kind: str = "rolled_back",
) -> None:
    """Write the endpoint first (found from the local journal when it can, without MLflow),
    then do the bookkeeping: the local journal now, MLflow in the background."""
    from gray.controller import operator

    first = None if to_previous else rollback_first.taken(model_or_id, kind)
    with reported_errors(output):
        router: Router | None = None
        journal: Journal | None = None
        plan: Plan | None = None
        recorded: Recorded | None = None
        if first is not None:
            if first.refused is not None:
                raise first.refused
            assert first.recorded is not None
            state, recorded, seconds = first.state, first.recorded, first.seconds
            applied = recorded.applied
            if recorded.event is not None:
                _sync_in_background(state.rollout_id, registry_uri, tag=True)
        else:
            local = LocalJournal()
            state = operator.find_local_rollout(local, model_or_id)
            plan = _local_plan(local, state)
            if state is None and not (router_url or os.environ.get("GRAY_GATEWAY_URL")):
                journal = _shared_journal(model_or_id, registry_uri)
                state, plan = _find_rollout(journal, model_or_id)
                if state is None:
                    raise _unknown_target(model_or_id, journal, registry_uri)
            router = _router_for(plan, router_url)
            applied, seconds = operator.rollback_endpoint(router, state, to_previous=to_previous)
            recorded = _record(
                applied, state, plan, router, journal, reason, to_previous, registry_uri, kind
            )
    for warning in recorded.warnings:
        error_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    _report(model_or_id, state, recorded, seconds, output)
    raise typer.Exit(1 if kind == "aborted" else 0)


def _record(
    applied: Applied,
    state: RolloutState | None,
    plan: Plan | None,
    router: Router | None,
    journal: Journal | None,
    reason: str,
    to_previous: bool,
    registry_uri: str | None,
    kind: str,
) -> Recorded:
    """The journal after the write. A rollout in the local journal gets its terminal event
    there at once and MLflow from a detached `gray rollout sync`; otherwise (a rollout
    known only to MLflow, or `--to previous`, which moves aliases) MLflow is written here."""
    from gray.controller import operator, rollouts

    in_shared_only = journal is not None
    registry = None
    if to_previous or in_shared_only:
        if journal is None:
            journal = _shared_journal(state.rollout_id if state else None, registry_uri)
        try:
            registry = rollouts.open_registry(plan, registry_uri)
        except GrayError as exc:
            error_console.print(f"[yellow]warning:[/] registry unavailable: {exc.message}")
    elif state is not None:
        journal = Journal(LocalJournal())
    if router is None and to_previous:
        router = _router_for(plan, None)
    recorded = operator.record_rollback(
        applied,
        router=router,
        journal=journal,
        registry=registry,
        state=state,
        plan=plan,
        reason=reason,
        to_previous=to_previous,
        kind=kind,
    )
    if state is not None and registry is None and recorded.event is not None:
        _sync_in_background(state.rollout_id, registry_uri, tag=True)
    return recorded


def _report(
    model_or_id: str,
    state: RolloutState | None,
    recorded: Recorded,
    seconds: float,
    output: OutputFormat,
) -> None:
    applied, moves, ended = recorded.applied, recorded.moves, recorded.ended_before
    lease = applied.lease
    rollout_id = state.rollout_id if state else None
    if output == OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "rollout_id": rollout_id,
                "route": applied.route.to_dict(),
                "lease": lease.to_dict() if lease else None,
                "milliseconds": round(seconds * 1000, 1),
                "alias_moves": list(moves),
                "already_ended": ended.phase.value if ended else None,
                "warnings": list(recorded.warnings),
            }
        )
        return
    what = rollout_id or model_or_id
    epoch = lease.epoch if lease else "-"
    console.print(
        f"[green]✓[/] {what}: v{applied.route.baseline} answers 100 % "
        f"(endpoint write {seconds * 1000:.0f} ms, lease epoch {epoch}); "
        "no older controller can write again",
        soft_wrap=True,
    )
    if ended is not None:
        console.print(f"  the rollout had already ended: {ended.reason}", soft_wrap=True)
    for move in moves:
        console.print(f"  @{move['alias']}: v{move['from_version']} → v{move['to_version']}")


def _sync_in_background(rollout_id: str, registry_uri: str | None, *, tag: bool) -> None:
    """Send the new event to MLflow (and tag the candidate) from a detached process: the
    command returns without waiting for MLflow, the local journal holds the record."""
    from gray.cli.rollout import start_in_background

    log_path = LocalJournal().root / rollout_id / "sync.log"
    args = ["rollout", "sync", rollout_id]
    if tag:
        args.append("--tag-rolled-back")
    if registry_uri:
        args += ["--registry-uri", registry_uri]
    try:
        start_in_background(args, log_path)
    except OSError as exc:
        error_console.print(
            f"[yellow]warning:[/] could not start `gray rollout sync {rollout_id}` ({exc}); "
            "run it to update MLflow",
            soft_wrap=True,
        )


def _shared_journal(rollout_id: str | None, registry_uri: str | None) -> Journal:
    from gray.cli.rollout import journal_for

    journal, _ = journal_for(rollout_id, registry_uri)
    return journal


def _local_plan(local: LocalJournal, state: RolloutState | None) -> Plan | None:
    if state is None:
        return None
    record = local.load(state.rollout_id)
    if record is None or not record.plan_text:
        return None
    from gray.controller.rollouts import rollout_plan

    return rollout_plan(record, state.rollout_id)


def _router_for(plan: Plan | None, router_url: str | None) -> Router:
    from gray.controller import rollouts

    return rollouts.build_router(plan) if plan else _router_from_flags(router_url)


def _find_rollout(journal: Journal, model_or_id: str) -> tuple[RolloutState | None, Plan | None]:
    """A rollout by id, else the model's newest active one, else its newest of all."""
    from gray.controller.operator import newest_rollout
    from gray.controller.rollouts import rollout_plan

    try:
        record = journal.load(model_or_id)
    except RolloutNotFoundError:
        record = None
    if record is not None:
        return record.state, rollout_plan(record, model_or_id)
    chosen = newest_rollout(journal.list_states(model_or_id))
    if chosen is None:
        return None, None
    record = journal.load(chosen.rollout_id)
    return record.state, rollout_plan(record, chosen.rollout_id)


def _unknown_target(model_or_id: str, journal: Journal, registry_uri: str | None) -> GrayError:
    """Why nothing can be rolled back for `model_or_id`: say whether the model exists,
    and which names the journals know."""
    from gray.controller import rollouts
    from gray.controller.errors import ModelNotFoundError

    known = sorted({s.model for s in journal.list_states()})
    close = difflib.get_close_matches(model_or_id, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    what = f"no rollout id or model {model_or_id!r} in the local or MLflow journal"
    try:
        rollouts.open_registry(None, registry_uri).versions(model_or_id)
    except ModelNotFoundError:
        what = f"registered model {model_or_id!r} does not exist, and no rollout has that id"
    except GrayError:
        pass
    listed = f" (models with rollouts: {', '.join(known)})" if known else ""
    return RolloutNotFoundError(
        f"{what}{listed}{hint}; nothing was changed. To roll back an endpoint that no "
        "rollout names, pass --router-url or set GRAY_GATEWAY_URL"
    )


def _router_from_flags(router_url: str | None) -> Router:
    from gray.controller.plan.models import RouterSpec
    from gray.controller.routers.gateway import GatewayRouter

    url = router_url or os.environ.get("GRAY_GATEWAY_URL")
    if not url:
        raise ConfigError(
            "no rollout found for this name and no endpoint given; pass --router-url or set "
            "GRAY_GATEWAY_URL"
        )
    spec = RouterSpec(url=url, token=os.environ.get("GRAY_GATEWAY_TOKEN"))
    return GatewayRouter(spec.url, spec.token, timeout=spec.timeout)
