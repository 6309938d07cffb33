"""`gray rollback`: the on-call engineer's one command to undo a rollout."""

from __future__ import annotations

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
from gray.controller.errors import ConfigError
from gray.controller.redact import redact
from gray.controller.state import RolloutState

if TYPE_CHECKING:
    from gray.controller.operator import Recorded
    from gray.controller.routers.gateway_fleet import ReplicaOutcome

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
changed; 4 the endpoint could not be reached (nothing changed), or a gateway
fleet's replica could not be written (each replica's answer is listed; the
written ones stay rolled back).

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
    """Roll back (or report the write the fast path made before the CLI started)."""
    from gray.controller.operator_rollback import RollbackRequest, roll_back

    first = None if to_previous else rollback_first.taken(model_or_id, kind)
    request = RollbackRequest(model_or_id, reason, to_previous, registry_uri, router_url, kind)
    with reported_errors(output):
        done = roll_back(request, _warn, first)
    for warning in done.recorded.warnings:
        _warn(warning)
    _report(model_or_id, done.state, done.recorded, done.seconds, output, done.replicas)
    raise typer.Exit(1 if kind == "aborted" else 0)


def _warn(text: str) -> None:
    # Warnings may quote MLflow's and httpx's own errors, which may carry a URL's credentials.
    error_console.print(f"[yellow]warning:[/] {redact(text)}", soft_wrap=True)


def _report(
    model_or_id: str,
    state: RolloutState | None,
    recorded: Recorded,
    seconds: float,
    output: OutputFormat,
    replicas: tuple[ReplicaOutcome, ...] = (),
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
                "replicas": [replica.to_dict() for replica in replicas],
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
    for replica in replicas:
        console.print(f"  replica {replica.describe()}", soft_wrap=True)
    if ended is not None:
        console.print(f"  the rollout had already ended: {ended.reason}", soft_wrap=True)
    for move in moves:
        console.print(f"  @{move['alias']}: v{move['from_version']} → v{move['to_version']}")
