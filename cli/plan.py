"""`gray plan`: check plans and show their timeline before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from gray.controller.gates.detectability import Detectability
    from gray.controller.plan.detectability import StageDetection

plan_app = typer.Typer(
    help="Check rollout plans and show what they will do.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _base_rates(value: str | None) -> str | None:
    """Checked at parse time, so a typo is a usage error naming the option."""
    from gray.controller.plan.detectability import parse_base_rates

    try:
        parse_base_rates(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return value


def _labelled(value: str) -> str:
    """Checked at parse time like --base-rate; read with `labelled_share`."""
    labelled_share(value)
    return value


def labelled_share(value: str) -> float:
    from gray.controller.plan.units import parse_share

    try:
        share = parse_share(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if not 0 < share <= 1:
        raise typer.BadParameter(f"expected a share above 0 and at most 100 %, got {value!r}")
    return share


RpsOption = typer.Option(
    None,
    "--rps",
    min=0,
    help="Requests per second the endpoint serves: estimate each stage's candidate "
    "requests, and simulate what each stage's gates can detect at that traffic.",
)
BaseRateOption = typer.Option(
    None,
    "--base-rate",
    callback=_base_rates,
    metavar="NAME=RATE,...",
    help="The baseline's rates the simulation assumes (with --rps): error, bad_request, "
    "latency (requests slower than a gate's slo), accuracy, wrong_prediction, disagreement. "
    "Defaults: error=1%,bad_request=1%,latency=5%,accuracy=95%,wrong_prediction=5%,"
    "disagreement=1%.",
)
LabelledOption = typer.Option(
    "100%",
    "--labelled",
    callback=_labelled,
    metavar="SHARE",
    help="Share of requests that get a label (with --rps; accuracy and wrong predictions).",
)


@plan_app.command("validate")
def validate(
    plans: list[Path] = typer.Argument(..., metavar="PLAN...", help="Plan files to check."),
    rps: float | None = RpsOption,
    base_rate: str | None = BaseRateOption,
    labelled: str = LabelledOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Check plans; report every problem with file:line:column.

    Exit 0 when every plan is valid, 2 when one is not. With --rps, also warn (exit 0)
    about each stage that cannot reach its own margin at that traffic: its gates
    cannot show a candidate identical to the baseline within their allowance in the
    stage's dwell, so the stage ends INCONCLUSIVE and the plan's policy decides.

    Examples:

    \b
      gray plan validate plans/*.yaml
      gray plan validate plan.yaml --output json
      gray plan validate plans/incremental.yaml --rps 200
      gray plan validate plan.yaml --rps 50 --base-rate error=0.5% --output json
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
        warnings = _margin_warnings(plan, rps, base_rate, labelled)
        results.append({"path": str(path), "valid": True, "name": plan.name, "warnings": warnings})
        if output == OutputFormat.text:
            console.print(
                f"[green]✓ {path}[/]: plan {plan.name}, {len(plan.stages)} stages, "
                f"{format_duration(total_dwell(plan))} of dwell"
            )
            for warning in warnings:
                console.print(f"  [yellow]warning:[/] {warning}", markup=True, soft_wrap=True)
    all_valid = all(r["valid"] for r in results)
    if output == OutputFormat.json:
        emit_json({"ok": all_valid, "plans": results})
    raise typer.Exit(0 if all_valid else 2)


def _margin_warnings(
    plan: Plan, rps: float | None, base_rate: str | None, labelled: str
) -> list[str]:
    if not rps:
        return []
    from gray.controller.plan.detectability import (
        margin_warnings,
        parse_base_rates,
        plan_detectability,
    )

    stages = plan_detectability(plan, rps, parse_base_rates(base_rate), labelled_share(labelled))
    return margin_warnings(plan, rps, stages)


@plan_app.command("show")
def show(
    plan_path: Path = typer.Argument(..., metavar="PLAN", help="The plan file."),
    rps: float | None = RpsOption,
    base_rate: str | None = BaseRateOption,
    labelled: str = LabelledOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Show a plan's stages, gates and timeline.

    With --rps, each stage's gates are simulated at that traffic (the gates' own code,
    seeded): the smallest regression each catches 80 % of the time within the stage's
    dwell, how often and how fast it catches a 2x regression (rates doubled; a latency
    shift or a disagreement twice its allowance), and how often it passes a candidate
    identical to the baseline.

    Examples:

    \b
      gray plan show plans/incremental.yaml
      gray plan show plans/cold-start.yaml --rps 500
      gray plan show plans/incremental.yaml --rps 50 --base-rate error=0.5%,latency=2%
      gray plan show plan.yaml --rps 200 --labelled 30% --output json
    """
    try:
        plan = load_plan(plan_path)
    except PlanError as error:
        fail(error, output)
    rows = timeline(plan, rps)
    detected = _detected(plan, rps, base_rate, labelled)
    if output == OutputFormat.json:
        payload: dict[str, Any] = {
            "name": plan.name,
            "total_seconds": total_dwell(plan),
            "stages": rows,
        }
        if detected is not None:
            payload["detectability"] = [stage.to_dict() for stage in detected]
        emit_json(payload)
        return
    _print_stages(plan, rows, rps)
    _print_gates(plan)
    if detected is not None and rps is not None:
        _print_detectability(plan, rps, detected)
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


def _detected(
    plan: Plan, rps: float | None, base_rate: str | None, labelled: str
) -> list[StageDetection] | None:
    if not rps:
        return None
    from gray.controller.plan.detectability import parse_base_rates, plan_detectability

    return plan_detectability(plan, rps, parse_base_rates(base_rate), labelled_share(labelled))


def _print_detectability(plan: Plan, rps: float, stages: list[StageDetection]) -> None:
    table = Table(
        title=f"what each stage detects at {rps:g} requests/s (simulated with the gates' code)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("stage", "gate", "base rate", "caught 80 %", "2x caught", "identical passes"):
        table.add_column(column, no_wrap=column != "2x caught")
    for stage in stages:
        for index, found in enumerate(stage.gates):
            table.add_row(
                f"{stage.number}. {stage.name}" if index == 0 else "",
                found.gate,
                _base_rate(found),
                _smallest_cell(found),
                _double_cell(found, stage.dwell),
                f"{found.passes_alike:.0%}",
            )
    console.print(table)
    console.print(
        "caught 80 %: the smallest regression the gate catches 80 % of the time within the "
        "stage's dwell; 2x: rates doubled, a latency shift or a disagreement at twice its "
        "allowance; identical passes: how often a candidate identical to the baseline "
        "passes by the end of the dwell (else the stage ends INCONCLUSIVE). Requests are "
        "taken as independent and every one inside the stage's audience."
    )
    methods = {found.method for stage in stages for found in stage.gates if found.method}
    if "clustered" in methods:
        console.print(
            "Rate gates simulated with the clustered test, as they decide when the metrics "
            "source counts per routing-key group (per request where a stage has no "
            "concurrent baseline traffic)."
        )
    elif methods:
        console.print(
            "Rate gates simulated with the per-request test, as this source has no "
            "counts per routing-key group."
        )
    warnings = _warnings_from(plan, rps, stages)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def _warnings_from(plan: Plan, rps: float, stages: list[StageDetection]) -> list[str]:
    from gray.controller.plan.detectability import margin_warnings

    return margin_warnings(plan, rps, stages)


def _base_rate(found: Detectability) -> str:
    if found.unit == "shift":
        return "-"
    return format_share(found.base)


def _smallest_cell(found: Detectability) -> str:
    from gray.controller.gates.detectability import describe_regression

    if found.smallest is None:
        return f"none up to {describe_regression(found, found.largest)}"
    return f"{describe_regression(found, found.smallest)} or more"


def _double_cell(found: Detectability, dwell: float) -> str:
    power = f"{found.power_at_double:.0%}"
    if found.median_seconds_at_double is None:
        return f"{power} within {format_duration(dwell)}"
    return f"{power}, median {format_duration(found.median_seconds_at_double)}"


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
