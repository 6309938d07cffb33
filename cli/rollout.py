"""`gray rollout`: start, follow and steer rollouts."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gray.cli.display import JsonEvents, RolloutView, event_json, render_state
from gray.cli.output import (
    EXIT_CODES_HELP,
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    error_console,
    reported_errors,
)
from gray.controller import detached, lookup
from gray.controller.errors import (
    ConfigError,
    PreflightError,
)
from gray.controller.journal import (
    Event,
    EventKind,
    Journal,
    RolloutRecord,
    new_rollout_id,
)
from gray.controller.options import duration_option
from gray.controller.plan.loading import load_plan
from gray.controller.plan.models import Plan
from gray.controller.plan.units import format_duration
from gray.controller.redact import redact
from gray.controller.state import Phase, RolloutState

if TYPE_CHECKING:
    from collections.abc import Callable

    from gray.controller import loop
    from gray.controller.metrics.base import MetricsSource
    from gray.controller.registry import Registry
    from gray.controller.report.samples import DisagreeingPairs
    from gray.controller.rollouts import Check
    from gray.controller.routers.base import Router
    from gray.controller.runner import RunResult

rollout_app = typer.Typer(
    help=f"Start, follow and steer rollouts.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RegistryOption = typer.Option(
    None,
    "--registry-uri",
    help="MLflow registry (default: the plan's, $MLFLOW_TRACKING_URI, or sqlite:///mlflow.db).",
)
UntilOption = typer.Option(
    None, "--until-stage", help="Stop after this stage (number or name), traffic held (exit 3)."
)
ExitOnHoldOption = typer.Option(
    False, "--exit-on-hold", help="Exit 3 instead of waiting when a stage waits for approval."
)
HoldTrafficOption = typer.Option(
    False,
    "--hold-traffic",
    help="Keep each stage's traffic when no controller watches it (no lease expiry). Without "
    "it the candidate's share returns to the baseline router.lease_ttl after the last look.",
)


LATEST_SHOWN = 5  # rollouts `status` shows when none is active
SharedOption = typer.Option(
    False, "--shared", help="Read the MLflow journal too, even when the local one answers."
)


def _warn(text: str) -> None:
    # Warnings quote MLflow's and httpx's own errors, which may carry a URL's credentials.
    error_console.print(f"[yellow]warning:[/] {redact(text)}", soft_wrap=True)


@rollout_app.command("start")
def start(
    plan_path: Path = typer.Argument(..., metavar="PLAN", help="The rollout plan."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Run the preflight, print the timeline."),
    detach: bool = typer.Option(False, "--detach", help="Run the controller in the background."),
    until_stage: str | None = UntilOption,
    exit_on_hold: bool = ExitOnHoldOption,
    hold_traffic: bool = HoldTrafficOption,
    registry_uri: str | None = RegistryOption,
    rollout_id: str | None = typer.Option(None, "--rollout-id", hidden=True),
    retry_of: str | None = typer.Option(None, "--retry-of", hidden=True),
    output: OutputFormat = OutputOption,
) -> None:
    """Check everything, then move traffic stage by stage and decide.

    Before any traffic moves: both versions are pinned, both preprocessors are
    checked by hash, the endpoint must have both versions loaded, and the
    metrics source must answer. Any failure exits 2 and changes nothing.

    Examples:

    \b
      gray rollout start plans/incremental.yaml
      gray rollout start plan.yaml --dry-run
      gray rollout start plan.yaml --until-stage 1 --output json   # one CI job per stage
      gray rollout start plan.yaml --until-stage 1 --hold-traffic  # keep stage 1's traffic
      gray rollout start plan.yaml --detach && gray rollout status --watch
    """
    from gray.controller import rollouts

    with reported_errors(output):
        if detach and not dry_run:
            plan = load_plan(plan_path)
            rollouts.stage_number(plan, until_stage)
            _detach(plan_path, plan, until_stage, registry_uri, output, hold_traffic)
            return
        result = start_rollout(
            plan_path,
            dry_run,
            until_stage,
            exit_on_hold,
            registry_uri,
            rollout_id,
            output,
            hold_traffic=hold_traffic,
            retry_of=retry_of,
        )
    raise typer.Exit(0 if result is None else result.exit_code)


def start_rollout(
    plan_path: Path,
    dry_run: bool,
    until_stage: str | None,
    exit_on_hold: bool,
    registry_uri: str | None,
    rollout_id: str | None,
    output: OutputFormat,
    *,
    hold_traffic: bool = False,
    retry_of: str | None = None,
) -> RunResult | None:
    """Preflight, then run the rollout in this process with the live display (None: dry run).
    `retry_of`: the ended rollout this one retries (`gray rollout retry`)."""
    from gray.controller import rollouts

    setup = rollouts.set_up(plan_path, registry_uri, until_stage, _warn)
    plan, journal = setup.plan, setup.journal
    waiting = (
        console.status(
            "preflight: pinning versions, checking preprocessors, loading the candidate…"
        )
        if output == OutputFormat.text
        else contextlib.nullcontext()
    )
    try:
        with waiting:
            report = rollouts.preflight(plan, setup.registry, setup.router, setup.metrics, journal)
    except PreflightError as error:
        _print_checks(error.checks, output)
        raise
    _print_checks(report.checks, output)
    if dry_run:
        _print_dry_run(plan, output)
        return None
    step = rollouts.create_rollout(
        plan,
        setup.plan_text,
        report,
        journal,
        rollout_id=rollout_id,
        until_stage=setup.until,
        retry_of=retry_of,
    )
    return _run(
        plan,
        step,
        (setup.router, setup.metrics),
        setup.registry,
        journal,
        output,
        exit_on_hold,
        hold_traffic=hold_traffic,
    )


@rollout_app.command("resume")
def resume(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    until_stage: str | None = UntilOption,
    exit_on_hold: bool = ExitOnHoldOption,
    registry_uri: str | None = RegistryOption,
    watch_held: bool = typer.Option(
        False, "--watch-held", hidden=True, help="Judge a held stage without moving on."
    ),
    output: OutputFormat = OutputOption,
) -> None:
    """Continue a rollout from its journal: after a crash, a hold or --until-stage.

    The resumed controller writes with a newer lease epoch, so a controller that
    is still running somewhere stops at its next look instead of fighting.

    Examples:

    \b
      gray rollout resume fraud-20261125-101500-3fa2
      gray rollout resume fraud-20261125-101500-3fa2 --until-stage 3
    """
    from gray.controller import rollouts

    with reported_errors(output):
        journal, registry = lookup.journal_for(rollout_id, registry_uri, _warn, background=True)
        plan, step = rollouts.prepare_resume(journal, rollout_id, until_stage, watch=watch_held)
        adapters = rollouts.build_adapters(plan)
        result = _run(
            plan,
            step,
            adapters,
            registry,
            journal,
            output,
            exit_on_hold,
            leave_watcher=not watch_held,
        )
    raise typer.Exit(result.exit_code)


@rollout_app.command("status")
def status(
    rollout_id: str | None = typer.Argument(None, metavar="[ID]"),
    watch: bool = typer.Option(
        False, "--watch", "--wait", "-w", help="Keep following until it ends (or --until)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="With --wait: stop once the rollout reaches this phase."
    ),
    timeout: str | None = typer.Option(
        None, "--timeout", help="With --wait: give up after this long (exit 3), e.g. 2h."
    ),
    shared: bool = SharedOption,
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Show a rollout (or every active one): phase, stage, gates, recent decisions.

    The local journal answers when it is current (the rollout ended, or a controller on
    this machine runs it); otherwise, or with --shared, the MLflow journal is read too.

    With --wait (or --watch) it follows the rollout until it ends, or until it
    reaches the phase named by --until (for CI: `--until waiting_approval`); with
    --output json every new journal event is one JSON line, then the state.

    Exit code: that of the rollout's state (0 promoted, 1 rolled back or aborted,
    3 held), or 0 while it runs; with --until, 0 once the phase is reached and 3
    when --timeout ran out first.

    Examples:

    \b
      gray rollout status
      gray rollout status fraud-20261125-101500-3fa2 --watch
      gray rollout status fraud-20261125-101500-3fa2 --output json
      gray rollout status fraud-20261125-101500-3fa2 --wait --until waiting_approval \\
          --timeout 2h --output json
    """
    with reported_errors(output):
        wait_for = _phase_option(until)
        limit = _duration_option(timeout)
        if rollout_id is None:
            _status_of_all(watch, shared, registry_uri, output)
            return
        journal, record, plan = lookup.rollout_to_read(rollout_id, registry_uri, shared, _warn)
        if not watch:
            _show_status(plan, record, output)
            raise typer.Exit(record.state.exit_code or 0)
        code = _follow(journal, plan, record, wait_for, limit, output)
    raise typer.Exit(code)


def _phase_option(value: str | None) -> Phase | None:
    if value is None:
        return None
    try:
        return Phase(value.replace("-", "_"))
    except ValueError:
        names = ", ".join(p.value for p in Phase)
        raise ConfigError(f"--until takes one of {names}; got {value!r}") from None


def _duration_option(value: str | None) -> float | None:
    return None if value is None else duration_option("--timeout", value)


def _show_status(plan: Plan, record: RolloutRecord, output: OutputFormat) -> None:
    if output == OutputFormat.json:
        emit_json(
            {
                "state": record.state.to_dict(),
                "events": [event_json(e) for e in record.events[-20:]],
            }
        )
    else:
        console.print(render_state(plan, record.state, _recent(record.events)))


def _follow(
    journal: Journal,
    plan: Plan,
    record: RolloutRecord,
    until: Phase | None,
    timeout: float | None,
    output: OutputFormat,
) -> int:
    """Follow the journal until the rollout ends or reaches `until`; the exit code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = {(e.seq, e.at) for e in record.events}

    def reached(state: RolloutState) -> bool:
        return state.phase is until or state.phase.terminal

    def emit_new(current: RolloutRecord) -> None:
        for event in current.events:
            if (event.seq, event.at) not in seen:
                seen.add((event.seq, event.at))
                emit_json(event_json(event))

    live = (
        Live(console=console, refresh_per_second=2)
        if output == OutputFormat.text and console.is_terminal
        else None
    )
    with live if live is not None else contextlib.nullcontext():
        while not reached(record.state):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if live is not None:
                live.update(render_state(plan, record.state, _recent(record.events)))
            time.sleep(1.0)
            record = journal.load(record.state.rollout_id)
            if output == OutputFormat.json:
                emit_new(record)
    _show_status(plan, record, output)
    if until is not None and record.state.phase is until:
        return 0
    if not reached(record.state):
        error_console.print(
            f"[yellow]timed out[/] waiting for {record.state.rollout_id}: "
            f"{record.state.phase.value}",
            soft_wrap=True,
        )
        return 3
    return record.state.exit_code or 0


def _status_of_all(
    watch: bool, shared: bool, registry_uri: str | None, output: OutputFormat
) -> None:
    """The active rollouts; with none, the latest ones (a finished rollout is news too)."""
    states, journal = lookup.states_to_list(None, registry_uri, shared, _warn)
    active = [s for s in states if not s.phase.terminal]
    if not watch:
        if output == OutputFormat.json:
            emit_json(
                {
                    "rollouts": [s.to_dict() for s in active],
                    "latest": [s.to_dict() for s in states[:LATEST_SHOWN]],
                }
            )
        elif active or not states:
            _print_list(active, output)
        else:
            console.print(f"no active rollout; the latest {min(len(states), LATEST_SHOWN)}:")
            _print_list(states[:LATEST_SHOWN], output)
        return
    with Live(_list_table(active), console=console, refresh_per_second=1) as live:
        while True:  # until Ctrl-C: rollouts come and go
            time.sleep(2.0)
            live.update(_list_table([s for s in journal.list_states() if not s.phase.terminal]))


@rollout_app.command("list")
def list_rollouts(
    model: str | None = typer.Option(None, "--model", help="Only this model's rollouts."),
    shared: bool = SharedOption,
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """List rollouts, newest first, from the local journal; with --shared (or when this
    machine has none) from the MLflow journal too: rollouts run elsewhere, by CI.

    Examples:

    \b
      gray rollout list
      gray rollout list --shared --model fraud --output json
    """
    with reported_errors(output):
        states, _ = lookup.states_to_list(model, registry_uri, shared, _warn)
        _print_list(states, output)


def _command(
    rollout_id: str, command: str, reason: str, registry_uri: str | None, output: OutputFormat
) -> None:
    from gray.controller import rollouts

    with reported_errors(output):
        journal, _ = lookup.journal_for(rollout_id, registry_uri, _warn)
        state, plan = rollouts.send_command(journal, rollout_id, command, reason)
        alive = lookup.controller_alive(state, plan.interval)
        hint = (
            "the running controller acts on it within a second or so"
            if alive
            else f"no controller is running; continue with `gray rollout resume {rollout_id}`"
        )
        if output == OutputFormat.json:
            emit_json(
                {
                    "ok": True,
                    "rollout_id": rollout_id,
                    "command": command,
                    "controller_running": alive,
                }
            )
        else:
            console.print(f"[green]✓[/] {command} sent to {rollout_id}; {hint}")


@rollout_app.command("approve")
def approve(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason", help="Why, for the journal."),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Approve a stage that waits for a person; the rollout moves on.

    Examples:

    \b
      gray rollout approve fraud-20261125-101500-3fa2 --reason "samples read, look right"
    """
    _command(rollout_id, "approve", reason, registry_uri, output)


@rollout_app.command("pause")
def pause(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason"),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Hold traffic where it is and stop the dwell clock. Gates keep judging: a FAIL still
    rolls back. `gray rollout unpause ID` continues.

    Examples:

    \b
      gray rollout pause fraud-20261125-101500-3fa2 --reason "traffic spike, wait"
    """
    _command(rollout_id, "pause", reason, registry_uri, output)


@rollout_app.command("unpause")
def unpause(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason"),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Continue a paused rollout with the dwell time it had left.

    Examples:

    \b
      gray rollout unpause fraud-20261125-101500-3fa2
    """
    _command(rollout_id, "unpause", reason, registry_uri, output)


@rollout_app.command("promote")
def promote(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    skip_remaining: bool = typer.Option(
        False, "--skip-remaining", help="Required: promote now and skip the remaining stages."
    ),
    reason: str = typer.Option("", "--reason"),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Promote the candidate now, skipping the remaining stages (an explicit, journaled override).

    Examples:

    \b
      gray rollout promote fraud-20261125-101500-3fa2 --skip-remaining --reason "hotfix"
    """
    if not skip_remaining:
        with reported_errors(output):
            raise ConfigError("promoting before the last stage skips gates; add --skip-remaining")
    _command(rollout_id, "promote", reason, registry_uri, output)


@rollout_app.command("abort")
def abort(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option("", "--reason"),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Stop a rollout and send all traffic back to the baseline, now (exit 1 on success).

    Works whether its controller runs, hangs or is gone: the endpoint write is
    fenced with a newer lease, so a stale controller cannot undo it.

    Examples:

    \b
      gray rollout abort fraud-20261125-101500-3fa2 --reason "wrong model"
    """
    from gray.cli.rollback import perform_rollback  # the same write and report as `gray rollback`

    perform_rollback(rollout_id, reason, False, registry_uri, None, output, kind="aborted")


@rollout_app.command("sync")
def sync(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    tag_rolled_back: bool = typer.Option(
        False,
        "--tag-rolled-back",
        hidden=True,
        help="After an operator's rollback: tell the plan's webhooks and on_rollback hook, "
        "and tag the rolled-back candidate.",
    ),
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Send the local journal's events that the MLflow journal lacks.

    `gray rollback` runs this in the background, so that it never waits for MLflow;
    run it by hand after a controller warned that MLflow did not take its last events.

    Examples:

    \b
      gray rollout sync fraud-20261125-101500-3fa2
    """
    from gray.controller.rollout_sync import sync_rollout

    with reported_errors(output):
        synced = sync_rollout(rollout_id, registry_uri, _warn, after_operator_end=tag_rolled_back)
        if output == OutputFormat.json:
            emit_json(
                {
                    "ok": True,
                    "rollout_id": rollout_id,
                    "sent": synced.sent,
                    "tagged": synced.tagged,
                }
            )
        else:
            console.print(f"[green]✓[/] {rollout_id}: {synced.sent} event(s) sent to MLflow")


@rollout_app.command("report")
def report(
    rollout_id: str = typer.Argument(..., metavar="ID"),
    html: Path | None = typer.Option(
        None, "--html", help="Where to write the page (default: ID-report.html here)."
    ),
    open_it: bool = typer.Option(False, "--open", help="Open the page in a browser."),
    prediction_log: Path | None = typer.Option(
        None,
        "--prediction-log",
        help="A gateway's --state-dir, to read disagreeing mirrored pairs from its prediction "
        "log on disk (default: ask the plan's gateway).",
    ),
    shared: bool = SharedOption,
    registry_uri: str | None = RegistryOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Write a rollout's report: one self-contained HTML page (no network needed to view it).

    It shows the decision and who made it, each gate's estimate and confidence sequence
    against its margin (with the e-value), the traffic per version and the split in
    force, shadow disagreement with a sample of disagreeing pairs, and every journal
    event. A running rollout gives a snapshot. Needs the 'report' extra.

    Examples:

    \b
      gray rollout report fraud-20261125-101500-3fa2 --open
      gray rollout report fraud-20261125-101500-3fa2 --html /tmp/report.html --output json
      gray rollout report fraud-20261125-101500-3fa2 --prediction-log gray-demo/gateway
    """
    from gray.controller.report.command import write_rollout_report

    with reported_errors(output):
        read_pairs = _logged_pairs(prediction_log) if prediction_log else None
        written = write_rollout_report(
            rollout_id, html, registry_uri, _warn, shared=shared, read_pairs=read_pairs
        )
        if output == OutputFormat.json:
            emit_json(
                {
                    "ok": True,
                    "rollout_id": rollout_id,
                    "path": str(written.path),
                    "bytes": written.size,
                    "phase": written.state.phase.value,
                    "pairs": written.pairs_note,
                }
            )
        else:
            when = "" if written.state.phase.terminal else " (a snapshot: it is still running)"
            console.print(
                f"[green]✓[/] {rollout_id}: report written to {written.path}{when}",
                soft_wrap=True,
            )
        if open_it:
            import webbrowser

            webbrowser.open(written.path.resolve().as_uri())


# --- helpers ------------------------------------------------------------------


# Mirrored pairs read from a prediction log on disk: enough for a sample, bounded in memory.
LOGGED_PAIRS_READ = 100_000


def _logged_pairs(state_dir: Path) -> Callable[[str], DisagreeingPairs]:
    """A reader of a gateway's prediction log on disk (the gateway's own reader)."""
    from gray.controller.extras import require_extra
    from gray.controller.report.samples import pick

    require_extra("gateway", "reading a gateway's prediction log (--prediction-log)")
    from gray.gateway.samples import read_samples

    def read(candidate: str) -> DisagreeingPairs:
        records = read_samples(state_dir, count=LOGGED_PAIRS_READ, kind="shadow", version=candidate)
        return pick(records, source=f"in the prediction log under {state_dir}")

    return read


def _run(
    plan: Plan,
    step: loop.Step,
    adapters: tuple[Router, MetricsSource],
    registry: Registry | None,
    journal: Journal,
    output: OutputFormat,
    exit_on_hold: bool,
    *,
    hold_traffic: bool = False,
    leave_watcher: bool = True,
) -> RunResult:
    """Run the controller here. When it exits with traffic held (`--until-stage`,
    `--exit-on-hold`), a detached watcher keeps judging the held stage."""
    from gray.controller.notify import Notifier
    from gray.controller.runner import Runner, RunResult

    view = RolloutView(plan, step.state)
    on_event = JsonEvents() if output == OutputFormat.json else view.on_event
    if output == OutputFormat.text and not console.is_terminal:
        on_event = _PlainEvents(view)
    router, metrics = adapters
    runner = Runner(
        plan,
        router,
        metrics,
        registry,
        journal,
        Notifier(plan.notify),
        on_event=on_event,
        on_warning=_warn,
        exit_on_hold=exit_on_hold,
        hold_traffic=hold_traffic,
    )
    if hold_traffic:
        _warn(
            "--hold-traffic: each stage's traffic stays in force when this controller stops, "
            "with no lease expiry"
        )
    try:
        if output == OutputFormat.text and console.is_terminal:
            with Live(view, console=console, refresh_per_second=4):
                result = runner.run(step)
        else:
            result = runner.run(step)
        if leave_watcher and result.exit_code == 3 and result.state.phase.holds_traffic:
            result = _leave_watcher(result, registry)
    except KeyboardInterrupt:
        state = runner.state or step.state
        reason = (
            f"controller stopped by Ctrl-C; traffic {_kept(plan, state, hold_traffic)}. "
            f"Continue with `gray rollout resume {state.rollout_id}` or undo with "
            f"`gray rollback {state.rollout_id}`"
        )
        result = RunResult(state, 3, reason)
    _print_exit(result, output)
    return result


def _print_exit(result: RunResult, output: OutputFormat) -> None:
    if output == OutputFormat.json:
        emit_json(
            {
                "event": "exit",
                "rollout_id": result.state.rollout_id,
                "exit_code": result.exit_code,
                "phase": result.state.phase.value,
                "reason": result.reason,
            }
        )
        return
    style = {0: "green", 1: "red", 3: "yellow"}.get(result.exit_code, "red")
    console.print(Text(f"{result.state.rollout_id}: {result.reason}", style=style))
    console.print(
        f"exit {result.exit_code}; details: gray rollout status {result.state.rollout_id}"
    )


def _kept(plan: Plan, state: RolloutState, hold_traffic: bool) -> str:
    """What happens to a stage's traffic once no controller renews its lease."""
    from gray.controller.endpoint_actions import lease_ttl

    if hold_traffic or plan.stages[state.stage].hold:
        return "held as last verified, with no expiry"
    return (
        f"held as last verified until its lease runs out ({format_duration(lease_ttl(plan))} "
        "after the last look), then back on the baseline"
    )


def _leave_watcher(result: RunResult, registry: Registry | None) -> RunResult:
    """Start `gray rollout resume ID --watch-held` in the background: the held traffic stays
    judged, and a FAIL still rolls back, until a resume (which fences it) or an abort."""
    from gray.controller.runner import RunResult

    try:
        watcher = detached.watch_held(result.state.rollout_id, registry.uri if registry else None)
    except OSError as exc:
        _warn(f"could not start a watcher for the held traffic ({exc}); nothing judges it now")
        return result
    reason = (
        f"{result.reason}; a watcher (pid {watcher.pid}, log {watcher.log}) keeps judging the "
        "held traffic and rolls back on a FAIL"
    )
    return RunResult(result.state, result.exit_code, reason)


class _PlainEvents:
    """Text output without a terminal (CI logs): one line per decision, none per look."""

    def __init__(self, view: RolloutView) -> None:
        self.view = view

    def __call__(self, event: Event) -> None:
        self.view.on_event(event)
        if event.event != EventKind.LOOK:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            console.print(f"{stamp} {event.event}: {event.reason}", markup=False, soft_wrap=True)


def _recent(events: tuple[Event, ...]) -> list[tuple[float, str, str]]:
    return [(e.at, e.event, e.reason) for e in events if e.event != EventKind.LOOK][-6:]


def _print_checks(checks: list[Check], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        emit_json({"event": "preflight", "checks": [c.to_dict() for c in checks]})
        return
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"{mark} {check.name}: {check.detail}", soft_wrap=True)


def _print_dry_run(plan: Plan, output: OutputFormat) -> None:
    from gray.controller.plan.timeline import timeline, total_dwell

    if output == OutputFormat.json:
        emit_json(
            {
                "event": "dry_run",
                "ok": True,
                "stages": timeline(plan, None),
                "total_seconds": total_dwell(plan),
            }
        )
        return
    for row in timeline(plan, None):
        console.print(
            f"  stage {row['number']} {row['name']}: candidate {row['weight']:.4g}, "
            f"{format_duration(float(row['dwell_seconds']))}, gates {', '.join(row['gates'])}"  # type: ignore[arg-type]
        )
    console.print(
        f"dry run: nothing changed; the rollout would take {format_duration(total_dwell(plan))}"
    )


def _print_list(states: list[RolloutState], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        emit_json({"rollouts": [s.to_dict() for s in states]})
        return
    if not states:
        console.print("no rollouts")
        return
    console.print(_list_table(states))


def _list_table(states: list[RolloutState]) -> Table:
    table = Table()
    for column in ("id", "model", "versions", "phase", "stage", "updated", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    for s in states:
        table.add_row(
            s.rollout_id,
            s.model,
            f"v{s.baseline} → v{s.candidate}",
            s.phase.value,
            str(s.stage + 1),
            time.strftime("%m-%d %H:%M:%S", time.localtime(s.updated_at)),
            s.reason[:80],
        )
    return table


def _detach(
    plan_path: Path,
    plan: Plan,
    until_stage: str | None,
    registry_uri: str | None,
    output: OutputFormat,
    hold_traffic: bool = False,
) -> None:
    """Run the controller in a new session; return once it has started (or failed preflight)."""
    rollout_id = new_rollout_id(plan.model.name)
    started = detached.start_controller(
        plan_path,
        rollout_id,
        until_stage=until_stage,
        registry_uri=registry_uri,
        hold_traffic=hold_traffic,
    )
    if output == OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "rollout_id": rollout_id,
                "pid": started.pid,
                "log": str(started.log),
            }
        )
    else:
        console.print(
            f"started {rollout_id} in the background (pid {started.pid}); "
            f"follow it with `gray rollout status {rollout_id} --watch`"
        )
