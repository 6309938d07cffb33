"""What a person sees while a rollout runs: a live panel, or one JSON line per event."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gray.cli.output import emit_json
from gray.controller.gates.metrics import METRICS
from gray.controller.journal import Event, EventKind
from gray.controller.loop import dwell_elapsed
from gray.controller.plan.models import Plan, StageSpec
from gray.controller.plan.units import format_duration, format_share
from gray.controller.state import Phase, RolloutState

OUTCOME_STYLE = {
    "pass": "bold green",
    "fail": "bold red",
    "inconclusive": "yellow",
    "nodata": "dim",
}
# Events shown in red among a rollout's recent decisions.
_ALARMING = (EventKind.GATE_FAILED, EventKind.ROLLED_BACK, EventKind.ABORTED)
# Events shown in green: a stage that ended before its dwell because every gate passed.
_GOOD_NEWS = (EventKind.STAGE_PASSED_EARLY,)
PHASE_STYLE = {
    Phase.PROMOTED: "bold green",
    Phase.ROLLED_BACK: "bold red",
    Phase.ABORTED: "bold red",
    Phase.REVERTED: "bold red",
    Phase.ROLLING_BACK: "bold red",
    Phase.WAITING_APPROVAL: "bold yellow",
    Phase.PAUSED: "yellow",
    Phase.HELD: "yellow",
}


def event_json(event: Event) -> dict[str, Any]:
    state = event.state
    return {
        "event": event.event,
        "seq": event.seq,
        "at": event.at,
        "rollout_id": state.get("rollout_id"),
        "phase": state.get("phase"),
        "stage": state.get("stage"),
        "reason": event.reason,
        "data": event.data,
    }


class JsonEvents:
    """`--output json`: one line per journal event, flushed at once."""

    def __call__(self, event: Event) -> None:
        emit_json(event_json(event))


class RolloutView:
    """A rich renderable of a rollout's state, recomputed at every refresh."""

    def __init__(self, plan: Plan, state: RolloutState | None = None) -> None:
        self.plan = plan
        self.state = state
        self.recent: list[tuple[float, str, str]] = []

    def on_event(self, event: Event) -> None:
        self.state = RolloutState.from_dict(event.state)
        if event.event != EventKind.LOOK:
            self.recent.append((event.at, event.event, event.reason))
            self.recent = self.recent[-6:]

    def __rich__(self) -> RenderableType:
        return render_state(self.plan, self.state, self.recent)


def render_state(
    plan: Plan, state: RolloutState | None, recent: list[tuple[float, str, str]] | None = None
) -> RenderableType:
    if state is None:
        return Text("preparing…")
    phase_style = PHASE_STYLE.get(state.phase, "bold cyan")
    stage = plan.stages[min(state.stage, len(plan.stages) - 1)]
    header = Text.assemble(
        (f"{state.model} ", "bold"),
        f"{state.baseline_ref}=v{state.baseline} → {state.candidate_ref}=v{state.candidate}   ",
        (state.phase.value.replace("_", " "), phase_style),
    )
    early = early_end(plan, state)
    progress = Text(
        f"stage {state.stage + 1}/{len(plan.stages)} {stage.name}   {traffic(state, stage)}"
        + f"   {time_left(state)}"
        + (f"   {early}" if early else "")
    )
    parts: list[RenderableType] = [header, progress, stage_bar(plan, state)]
    verdict = state.last_verdict
    if verdict and verdict.get("verdicts"):
        parts.append(gate_table(verdict["verdicts"]))
    if recent:
        log = Table.grid(padding=(0, 1))
        for at, name, reason in recent:
            style = "red" if name in _ALARMING else "green" if name in _GOOD_NEWS else "dim"
            log.add_row(
                time.strftime("%H:%M:%S", time.localtime(at)), Text(name, style), Text(reason)
            )
        parts.append(log)
    elif state.reason:
        parts.append(Text(state.reason))
    return Panel(
        Group(*parts), title=state.rollout_id, title_align="left", border_style=phase_style
    )


def traffic(state: RolloutState, stage: StageSpec) -> str:
    """Who answers users now: the stage's split while it runs, the outcome once it ended."""
    if state.phase in (Phase.ROLLED_BACK, Phase.ABORTED, Phase.ROLLING_BACK):
        return f"candidate 0 % (was {format_share(stage.weight)}): v{state.baseline} answers all"
    if state.phase is Phase.PROMOTED:
        return f"v{state.candidate} answers all"
    if state.phase is Phase.REVERTED:
        return f"promotion undone: v{state.baseline} answers all"
    text = f"candidate {format_share(stage.weight)}"
    return text + (f"   mirror {format_share(stage.mirror)}" if stage.mirror else "")


def time_left(state: RolloutState, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if state.phase is Phase.RUNNING and state.deadline is not None:
        left = state.deadline - now
        if state.nodata_since is not None:
            return "dwell over, no candidate data yet: holding"
        if left <= 0:
            return "dwell over: deciding at the next look"
        shown = format_duration(max(left, 0.001))
        if state.extensions:
            return f"extended ({state.extensions}x), {shown} left"
        return f"dwell left {shown}"
    if state.phase is Phase.PAUSED and state.dwell_left is not None:
        return f"paused, {format_duration(max(state.dwell_left, 0.001))} of dwell left"
    if state.phase is Phase.WAITING_APPROVAL:
        return f"waiting: gray rollout approve {state.rollout_id}"
    return ""


def early_end(plan: Plan, state: RolloutState, now: float | None = None) -> str:
    """When a running stage may end before its dwell (its min_dwell), or nothing."""
    if state.phase is not Phase.RUNNING or state.deadline is None:
        return ""
    shortest = plan.stage_min_dwell(state.stage)
    if shortest is None:
        return ""
    now = time.time() if now is None else now
    to_go = shortest - dwell_elapsed(plan, state, now)
    if to_go > 0:
        return f"ends early once every gate passes, after {format_duration(to_go)} more"
    return "ends at the first look where every gate passes"


def stage_bar(plan: Plan, state: RolloutState) -> Text:
    bar = Text()
    for index, stage in enumerate(plan.stages):
        if index < state.stage or state.phase is Phase.PROMOTED:
            style = "green"
        elif index == state.stage:
            style = (
                "red"
                if state.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK, Phase.ABORTED)
                else "cyan"
            )
        else:
            style = "dim"
        bar.append(f" {stage.name} ", style=f"reverse {style}" if index == state.stage else style)
        if index < len(plan.stages) - 1:
            bar.append("→", style="dim")
    return bar


def gate_table(verdicts: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    table.add_column("gate", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("cand. vs base")
    table.add_column("estimate (confidence)")
    table.add_column("allowed")
    table.add_column("evidence")
    for verdict in verdicts:
        outcome = str(verdict.get("outcome", ""))
        extra = verdict.get("extra") or {}
        unit = str(verdict.get("unit", ""))
        interval = verdict.get("interval")
        estimate = _number(verdict.get("estimate"), unit)
        if interval:
            estimate += f" ({_number(interval[0], unit)} – {_number(interval[1], unit)})"
        table.add_row(
            str(verdict.get("gate", "")),
            Text(outcome.upper(), OUTCOME_STYLE.get(outcome, "")),
            _rates(extra, str(verdict.get("metric", ""))),
            estimate,
            _allowed(verdict.get("allowed"), unit, extra),
            _counts(verdict.get("counts") or {}),
        )
    return table


def _rates(extra: dict[str, Any], metric: str) -> str:
    candidate, baseline = extra.get("candidate_rate"), extra.get("baseline_rate")
    if isinstance(candidate, int | float) and isinstance(baseline, int | float):
        definition = METRICS.get(metric)
        # The gate counts the complement (wrong predictions); people read accuracy.
        if definition and definition.higher_is_better:
            candidate, baseline = 1 - candidate, 1 - baseline
        return f"{candidate:.2%} vs {baseline:.2%}"
    return "-"


def _allowed(value: Any, unit: str, extra: dict[str, Any]) -> str:
    ratio, points = extra.get("margin_ratio"), extra.get("allowance_points")
    if isinstance(ratio, int | float):
        text = f"{ratio:.3g}x"
        if isinstance(points, int | float) and points > 0:
            text += f" or +{points * 100:.3g}pt"
        return text
    return _number(value, unit)


def _number(value: Any, unit: str = "") -> str:
    """A verdict number for a person: ratios as 1.3x, differences in points, inf as ∞."""
    if value is None:
        return "-"
    if value in ("inf", "+inf", "Infinity"):
        return "∞"
    if value in ("-inf", "-Infinity"):
        return "-∞"
    if not isinstance(value, int | float):
        return str(value)
    if unit == "ratio":
        return f"{value:.3g}x"
    if unit == "difference":
        return f"{value * 100:+.2f}pt"
    return f"{value:.3g}"


def _counts(counts: dict[str, Any]) -> str:
    """`events/requests` of each side, e.g. `10/27 vs 0/70`."""
    sides = []
    for side in ("candidate", "baseline"):
        hits = next((counts[k] for k in (f"{side}_events", f"{side}_wrong") if k in counts), None)
        total = next(
            (
                counts[k]
                for k in (f"{side}_requests", f"{side}_labelled", f"{side}_pairs")
                if k in counts
            ),
            None,
        )
        if total is not None:
            sides.append(f"{hits:,}/{total:,}" if hits is not None else f"n={total:,}")
    if sides:
        return " vs ".join(sides)
    shown = [f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items() if isinstance(v, int)]
    return ", ".join(shown[:2])
