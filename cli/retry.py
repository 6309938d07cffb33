"""`gray rollout retry ID`: a new rollout of the versions a rolled-back rollout tested."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gray.cli.output import (
    EXIT_CODES_HELP,
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    reported_errors,
)

if TYPE_CHECKING:
    from gray.controller.rollout_retry import RetryTarget

RETRY_HELP = f"""Start a new rollout of the same two versions an ended rollout tested.

A version whose rollout was rolled back, aborted or reverted is never started again on
its own (`gray watch` skips it); this is how to ask. The new rollout gets a new id and
runs the old one's plan with both versions pinned as numbers; its `started` event says
which rollout it retries, and `gray rollout status OLD` shows the new id.

Examples:

\b
  gray rollout retry fraud-20261125-101500-3fa2
  gray rollout retry fraud-20261125-101500-3fa2 --detach --output json
  gray rollout retry fraud-20261125-101500-3fa2 --until-stage 1 --exit-on-hold

{EXIT_CODES_HELP} With --detach: 0 once it started. 2 also when the rollout is still
running or was promoted (nothing to retry).
"""


def retry(
    rollout_id: str = typer.Argument(..., metavar="ID", help="The ended rollout to retry."),
    detach: bool = typer.Option(False, "--detach", help="Run the controller in the background."),
    until_stage: str | None = typer.Option(
        None, "--until-stage", help="Stop after this stage (number or name), traffic held (exit 3)."
    ),
    exit_on_hold: bool = typer.Option(
        False, "--exit-on-hold", help="Exit 3 instead of waiting when a stage waits for approval."
    ),
    hold_traffic: bool = typer.Option(
        False, "--hold-traffic", help="Keep each stage's traffic when no controller watches it."
    ),
    registry_uri: str | None = typer.Option(
        None, "--registry-uri", help="MLflow registry (default: the rollout's plan's)."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    from gray.cli.rollout import _warn, start_rollout
    from gray.controller import lookup
    from gray.controller.journal import new_rollout_id
    from gray.controller.rollout_retry import retry_target, write_retry_plan

    with reported_errors(output):
        # The local journal answers for an ended rollout it holds (its first end is final).
        _, record, _ = lookup.rollout_to_read(rollout_id, registry_uri, False, _warn)
        target = retry_target(record.state, record.plan_text)
        new_id = new_rollout_id(record.state.model)
        plan_path = write_retry_plan(new_id, target)
        versions = f"v{target.old.baseline} → v{target.old.candidate}"
        if detach:
            _start_detached(
                plan_path,
                new_id,
                rollout_id,
                target,
                until_stage,
                registry_uri,
                hold_traffic,
                output,
            )
            return
        if output == OutputFormat.text:
            console.print(f"retrying {rollout_id} ({versions}) as {new_id}")
        result = start_rollout(
            plan_path,
            False,
            until_stage,
            exit_on_hold,
            registry_uri,
            new_id,
            output,
            hold_traffic=hold_traffic,
            retry_of=rollout_id,
        )
    raise typer.Exit(0 if result is None else result.exit_code)


retry.__doc__ = RETRY_HELP


def _start_detached(
    plan_path: Path,
    new_id: str,
    rollout_id: str,
    target: RetryTarget,
    until_stage: str | None,
    registry_uri: str | None,
    hold_traffic: bool,
    output: OutputFormat,
) -> None:
    """The retry's controller in the background; returns once its rollout is journaled."""
    from gray.controller import detached

    started = detached.start_controller(
        plan_path,
        new_id,
        until_stage=until_stage,
        registry_uri=registry_uri,
        hold_traffic=hold_traffic,
        retry_of=rollout_id,
    )
    if output == OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "rollout_id": new_id,
                "retry_of": rollout_id,
                "baseline": target.old.baseline,
                "candidate": target.old.candidate,
                "pid": started.pid,
                "log": str(started.log),
            }
        )
        return
    console.print(
        f"started {new_id} (v{target.old.baseline} → v{target.old.candidate}), a retry of "
        f"{rollout_id}, in the background (pid {started.pid}); follow it with "
        f"`gray rollout status {new_id} --watch`"
    )
