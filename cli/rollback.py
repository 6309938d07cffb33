"""`gray rollback`: the on-call engineer's one command to undo a rollout."""

from __future__ import annotations

import os

import typer

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
from gray.controller.plan import Plan, RouterSpec, parse_plan
from gray.controller.state import RolloutState

HELP = """Send all traffic back to the baseline now, from any machine.

MODEL_OR_ID is a rollout id, or a model name (its active rollout is used; with
none, the endpoint given by --router-url or $GRAY_GATEWAY_URL is rolled back).
One fenced write: the endpoint takes a newer lease epoch, so a controller that
still runs, hangs or comes back cannot push candidate traffic again. With
--to previous after a promotion, the alias moves back and the endpoint serves
the previous version.

Exit codes: 0 traffic is on the baseline; 2 bad input; 4 the endpoint could not
be reached (nothing changed).

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
    then do the bookkeeping."""
    from gray.cli.rollout import journal_for
    from gray.controller import rollouts

    with reported_errors(output):
        state, plan = _find_rollout(LocalJournal(), model_or_id)
        journal = None
        if plan is None and not (router_url or os.environ.get("GRAY_GATEWAY_URL")):
            journal, _ = journal_for(model_or_id, registry_uri)
            state, plan = _find_rollout(journal, model_or_id)
        router = rollouts.build_router(plan) if plan else _router_from_flags(router_url)
        applied, seconds = rollouts.rollback_endpoint(router, state)
        if journal is None:
            journal, _ = journal_for(state.rollout_id if state else None, registry_uri)
            if state is None:
                state, plan = _find_rollout(journal, model_or_id)
        registry = None
        try:
            registry = rollouts.open_registry(plan, registry_uri)
        except GrayError as exc:
            error_console.print(f"[yellow]warning:[/] registry unavailable: {exc.message}")
        applied, warnings, moves = rollouts.record_rollback(
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
    for warning in warnings:
        error_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
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
                "warnings": list(warnings),
            }
        )
    else:
        what = rollout_id or model_or_id
        epoch = lease.epoch if lease else "-"
        console.print(
            f"[green]✓[/] {what}: v{applied.route.baseline} answers 100 % "
            f"(endpoint write {seconds * 1000:.0f} ms, lease epoch {epoch}); "
            "no older controller can write again",
            soft_wrap=True,
        )
        for move in moves:
            console.print(f"  @{move['alias']}: v{move['from_version']} → v{move['to_version']}")
    raise typer.Exit(1 if kind == "aborted" else 0)


def _find_rollout(
    journal: Journal | LocalJournal, model_or_id: str
) -> tuple[RolloutState | None, Plan | None]:
    """A rollout by id, else the model's newest active one, else its newest of all."""
    try:
        record = journal.load(model_or_id)
    except RolloutNotFoundError:
        record = None
    if record is not None:
        return record.state, parse_plan(record.plan_text, f"{model_or_id}/plan.yaml")
    states = journal.list_states(model_or_id)
    active = [s for s in states if not s.phase.terminal]
    chosen = (active or sorted(states, key=lambda s: s.started_at, reverse=True) or [None])[0]
    if chosen is None:
        return None, None
    record = journal.load(chosen.rollout_id)
    if record is None:
        return chosen, None
    return record.state, parse_plan(record.plan_text, f"{chosen.rollout_id}/plan.yaml")


def _router_from_flags(router_url: str | None):  # type: ignore[no-untyped-def]
    from gray.controller.routers.gateway import GatewayRouter

    url = router_url or os.environ.get("GRAY_GATEWAY_URL")
    if not url:
        raise ConfigError(
            "no rollout found for this name and no endpoint given; pass --router-url or set "
            "GRAY_GATEWAY_URL"
        )
    spec = RouterSpec(url=url, token=os.environ.get("GRAY_GATEWAY_TOKEN"))
    return GatewayRouter(spec.url, spec.token, timeout=spec.timeout)
