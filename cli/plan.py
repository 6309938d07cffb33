"""`gray plan`: check plans and show their timeline before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from gray.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    fail,
    print_plan_error,
)
from gray.controller.errors import PlanError
from gray.controller.plan.loading import load_plan
from gray.controller.plan.models import Plan
from gray.controller.plan.timeline import gate_alphas, timeline, total_dwell
from gray.controller.plan.units import format_duration, format_share

plan_app = typer.Typer(
    help="Check rollout plans and show what they will do.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@plan_app.command("validate")
def validate(
    plans: list[Path] = typer.Argument(..., metavar="PLAN...", help="Plan files to check."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check plans; report every problem with file:line:column.

    Exit 0 when every plan is valid, 2 when one is not.

    Examples:

    \b
      gray plan validate plans/*.yaml
      gray plan validate plan.yaml --output json
    """
    results = []
    for path in plans:
        try:
            plan = load_plan(path)
        except PlanError as error:
            results.append({"path": str(path), "valid": False, **error.to_dict()})
            if output == OutputFormat.text:
                print_plan_error(error)
            continue
        results.append({"path": str(path), "valid": True, "name": plan.name})
        if output == OutputFormat.text:
            console.print(
                f"[green]✓ {path}[/]: plan {plan.name}, {len(plan.stages)} stages, "
                f"{format_duration(total_dwell(plan))} of dwell"
            )
    all_valid = all(r["valid"] for r in results)
    if output == OutputFormat.json:
        emit_json({"ok": all_valid, "plans": results})
    raise typer.Exit(0 if all_valid else 2)


@plan_app.command("show")
def show(
    plan_path: Path = typer.Argument(..., metavar="PLAN", help="The plan file."),
    rps: float | None = typer.Option(
        None,
        "--rps",
        min=0,
        help="Requests per second the endpoint serves, to estimate "
        "how many requests the candidate gets in each stage.",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Show a plan's stages, gates and timeline.

    Examples:

    \b
      gray plan show plans/incremental.yaml
      gray plan show plans/cold-start.yaml --rps 500
    """
    try:
        plan = load_plan(plan_path)
    except PlanError as error:
        fail(error, output)
    rows = timeline(plan, rps)
    if output == OutputFormat.json:
        emit_json({"name": plan.name, "total_seconds": total_dwell(plan), "stages": rows})
        return
    _print_stages(plan, rows, rps)
    _print_gates(plan)
    promote = (
        f"then {plan.promote.alias} → candidate"
        + (
            f", previous kept as {plan.promote.keep_previous_as}"
            if plan.promote.keep_previous_as
            else ""
        )
        if plan.promote
        else "no promotion"
    )
    approvals = sum(1 for s in plan.stages if s.approval)
    waits = f" plus {approvals} approval wait(s)" if approvals else ""
    console.print(f"Total: {format_duration(total_dwell(plan))}{waits}; {promote}.")


def _print_stages(plan: Plan, rows: list[dict[str, Any]], rps: float | None) -> None:
    console.print(
        f"[bold]{plan.name}[/]: {plan.model.name} {plan.model.baseline} → "
        f"{plan.model.candidate}, judged every {format_duration(plan.interval)} "
        f"(alpha {plan.alpha:g} per stage)"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("stage", "traffic", "mirror", "audience", "dwell", "ends"):
        table.add_column(column, no_wrap=True)
    if rps is not None:
        table.add_column("requests", justify="right", no_wrap=True)
    table.add_column("gates", overflow="fold")
    for row in rows:
        cells = [
            f"{row['number']}. {row['name']}"
            + (" ⏸" if row["approval"] else "")
            + (" ⚓" if row["hold"] else ""),
            format_share(row["weight"]),
            format_share(row["mirror"]) if row["mirror"] else "-",
            str(row["audience"]).replace(", ", "\n"),
            format_duration(row["dwell_seconds"]),
            format_duration(row["ends_at_seconds"]),
        ]
        if rps is not None:
            cells.append(f"{row['candidate_requests']:,}")
        cells.append(row["gate_changes"])
        table.add_row(*cells)
    console.print(table)
    if any(stage.approval for stage in plan.stages):
        console.print("⏸ waits for `gray rollout approve ID` after its dwell, traffic held.")
    if any(stage.hold for stage in plan.stages):
        console.print(
            "⚓ its traffic stays with no controller watching (hold: true, no lease expiry)."
        )


def _print_gates(plan: Plan) -> None:
    gate_table = Table(title="gates", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("gate", "allowed", "alpha", "min samples", "stages"):
        gate_table.add_column(column)
    for described, (gate, alphas, stages) in gate_alphas(plan).items():
        gate_table.add_row(
            gate.key,
            described.removeprefix(gate.key).strip(),
            " / ".join(f"{a:.3g}" for a in alphas),
            str(gate.min_samples),
            ", ".join(stages),
        )
    console.print(gate_table)
