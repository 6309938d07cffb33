"""What a rollout report shows, read from the journal: no drawing, no I/O.

Every number comes from the journal's events: a look's `verdict` (each gate's
estimate, confidence sequence, allowed margin, e-value and p-value at that look)
and `traffic` (what each version answered since the previous look), the routes
written and read back (`stage_started`, `rolled_back`, ...), and the decisions
with their reasons. A rollout still running gives the same facts up to its last
event: a snapshot.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from gray.controller.journal import Event, EventKind, RolloutRecord
from gray.controller.plan.models import Plan
from gray.controller.state import Phase

# Events drawn as marks on the gates' and the traffic's time axes, with their label.
MARKED = {
    EventKind.STAGE_EXTENDED: "extended",
    EventKind.WAITING_APPROVAL: "waiting for approval",
    EventKind.APPROVED: "approved",
    EventKind.PAUSED: "paused",
    EventKind.UNPAUSED: "unpaused",
    EventKind.HELD: "held",
    EventKind.NODATA_HOLD: "no data: holding",
    EventKind.RESUMED: "resumed",
    EventKind.PROMOTE_OVERRIDE: "promotion forced",
}
DECISIONS = (
    EventKind.GATE_FAILED,
    EventKind.HOOK_ROLLBACK,
    EventKind.ABORT_REQUESTED,
    EventKind.PROMOTING,
    EventKind.PROMOTE_OVERRIDE,
)
ENDS = (
    EventKind.PROMOTED,
    EventKind.ROLLED_BACK,
    EventKind.ABORTED,
    EventKind.REVERTED,
    EventKind.SUPERSEDED,
)


@dataclass(frozen=True)
class Marker:
    at: float
    kind: str  # "stage", "decision", or an event kind from MARKED
    label: str
    reason: str


@dataclass(frozen=True)
class GatePoint:
    """One gate at one look."""

    at: float
    stage: int
    outcome: str
    estimate: float | None
    lower: float | None
    upper: float | None  # None: not bounded yet (infinite)
    allowed: float | None
    e_value: float | None
    p_value: float | None
    alpha: float
    sentence: str


@dataclass(frozen=True)
class GateSeries:
    key: str
    metric: str
    unit: str
    points: tuple[GatePoint, ...]


@dataclass(frozen=True)
class TrafficPoint:
    """What each version answered between the previous look (or the stage's start) and `at`."""

    at: float
    seconds: float
    stage: int
    rows: dict[str, list[Any]]  # version side -> [requests, errors, bad, p50, p90, p99]
    pairs: tuple[int, int] | None  # mirrored pairs, disagreements


@dataclass(frozen=True)
class RouteStep:
    """The split in force from `at` on, as written and read back."""

    at: float
    weight: float
    mirror: float
    why: str


@dataclass(frozen=True)
class StageSpan:
    number: int  # 1-based
    name: str
    weight: float
    mirror: float
    started_at: float
    ended_at: float | None
    outcome: str
    extensions: int


@dataclass(frozen=True)
class Header:
    rollout_id: str
    model: str
    baseline: str
    candidate: str
    baseline_ref: str
    candidate_ref: str
    plan: str
    phase: Phase
    decision: str
    decided_by: str
    started_at: float
    ended_at: float | None
    as_of: float  # the newest event: the report is a snapshot of a running rollout


@dataclass(frozen=True)
class ReportFacts:
    header: Header
    stages: tuple[StageSpan, ...]
    gates: tuple[GateSeries, ...]
    markers: tuple[Marker, ...]
    traffic: tuple[TrafficPoint, ...]
    routes: tuple[RouteStep, ...]
    events: tuple[Event, ...]
    plan_text: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_shadow(self) -> bool:
        return any(p.pairs for p in self.traffic) or any(s.mirror > 0 for s in self.stages)


def report_facts(record: RolloutRecord, plan: Plan, now: float | None = None) -> ReportFacts:
    """The report's facts from a rollout's journal record and its plan."""
    events = tuple(sorted(record.events, key=lambda e: (e.at, e.seq)))
    notes = []
    if events and events[0].seq > 1:
        notes.append(
            f"this journal holds events {events[0].seq} to {events[-1].seq} only (the MLflow "
            "journal is read for its newest events); the report.html the controller logs at "
            "the end, or `gray rollout report` on the machine that ran it, has them all"
        )
    return ReportFacts(
        header=_header(record, events, now),
        stages=_stages(plan, events),
        gates=_gates(events),
        markers=_markers(plan, events),
        traffic=_traffic(events),
        routes=_routes(events),
        events=events,
        plan_text=record.plan_text,
        notes=tuple(notes),
    )


def _header(record: RolloutRecord, events: tuple[Event, ...], now: float | None) -> Header:
    state = record.state
    newest = max((e.at for e in events), default=state.updated_at)
    return Header(
        rollout_id=state.rollout_id,
        model=state.model,
        baseline=state.baseline,
        candidate=state.candidate,
        baseline_ref=state.baseline_ref,
        candidate_ref=state.candidate_ref,
        plan=state.plan_name,
        phase=state.phase,
        decision=state.reason,
        decided_by=decided_by(events, state.phase),
        started_at=state.started_at,
        ended_at=state.ended_at,
        as_of=newest if state.phase.terminal else (now if now is not None else time.time()),
    )


def decided_by(events: tuple[Event, ...], phase: Phase) -> str:
    """Who or what made the rollout's decision, in a few words."""
    if not phase.terminal:
        return f"nobody yet: the rollout is {phase.value.replace('_', ' ')}"
    end = next((e for e in reversed(events) if e.event in ENDS), None)
    if end is not None and end.data.get("operator"):
        command = "gray rollback --to previous" if end.event is EventKind.REVERTED else None
        command = command or (
            "gray rollout abort" if end.event is EventKind.ABORTED else "gray rollback"
        )
        return f"{end.data['operator']} ({command})"
    if end is not None and end.event is EventKind.SUPERSEDED:
        return "a newer lease on the endpoint (an operator's rollback or the lease's expiry)"
    decision = next((e for e in reversed(events) if e.event in DECISIONS), None)
    if decision is None:
        return "not journaled"
    if decision.event is EventKind.GATE_FAILED:
        failed = _failed_gates(events, decision)
        if failed:
            return "the gates: " + ", ".join(failed) + " failed"
        return "the plan's policies (" + _policy_of(decision.reason) + ")"
    if decision.event is EventKind.HOOK_ROLLBACK:
        hook = next((e for e in reversed(events) if e.event is EventKind.HOOK_FAILED), None)
        name = hook.data.get("hook") if hook is not None else None
        return f"the plan's {name or 'hook'} hook"
    if decision.event is EventKind.ABORT_REQUESTED:
        return _actor(decision.reason, "aborted by ") + " (gray rollout abort)"
    if decision.event is EventKind.PROMOTE_OVERRIDE:
        return _actor(decision.reason, "forced by ") + " (gray rollout promote --skip-remaining)"
    approvers = [_actor(e.reason, "approved by ") for e in events if e.event is EventKind.APPROVED]
    approved = f", approved by {', '.join(approvers)}" if approvers else ""
    return f"the gates: every stage passed{approved}"


def _failed_gates(events: tuple[Event, ...], decision: Event) -> list[str]:
    """The gates that failed at the look just before the decision."""
    before = [e for e in events if e.event is EventKind.LOOK and e.at <= decision.at]
    if not before:
        return []
    verdicts = (before[-1].data.get("verdict") or {}).get("verdicts") or []
    return [str(v.get("gate")) for v in verdicts if v.get("outcome") == "fail"]


def _policy_of(reason: str) -> str:
    if "no data" in reason:
        return "no_data: the hold ran out"
    if "inconclusive" in reason:
        return "inconclusive: then fail"
    return reason[:80]


def _actor(reason: str, after: str) -> str:
    """The actor named in a reason like 'stage 1/3 approved by ana@host: looks right'."""
    _, found, rest = reason.partition(after)
    if not found:
        return "an operator"
    return rest.split(":", 1)[0].split(";", 1)[0].split(",", 1)[0].strip() or "an operator"


def _stages(plan: Plan, events: tuple[Event, ...]) -> tuple[StageSpan, ...]:
    spans: list[StageSpan] = []
    for index, event in enumerate(events):
        if event.event is not EventKind.STAGE_STARTED:
            continue
        number = int(event.data.get("stage", event.state.get("stage", 0)))
        route = event.data.get("route") or {}
        later = events[index + 1 :]
        nxt = next((e for e in later if e.event is EventKind.STAGE_STARTED), None)
        # The next stage starts at the look that passed this one: split by order, not time.
        within = list(later[: later.index(nxt)] if nxt is not None else later)
        ended = next((e for e in within if e.event in (*ENDS, EventKind.STAGE_PASSED)), None)
        name = plan.stages[number].name if number < len(plan.stages) else str(number + 1)
        spans.append(
            StageSpan(
                number=number + 1,
                name=name,
                weight=float(route.get("weight", 0.0)),
                mirror=float(route.get("mirror", 0.0)),
                started_at=event.at,
                ended_at=ended.at if ended else (nxt.at if nxt else None),
                outcome=_stage_outcome(within),
                extensions=sum(1 for e in within if e.event is EventKind.STAGE_EXTENDED),
            )
        )
    return tuple(spans)


def _stage_outcome(within: list[Event]) -> str:
    kinds = [e.event for e in within]
    for kind, outcome in (
        (EventKind.STAGE_PASSED, "passed"),
        (EventKind.GATE_FAILED, "failed"),
        (EventKind.HOOK_ROLLBACK, "failed (hook)"),
        (EventKind.ABORTED, "aborted"),
        (EventKind.ROLLED_BACK, "rolled back"),
        (EventKind.SUPERSEDED, "superseded"),
    ):
        if kind in kinds:
            return outcome
    return "running"


def _gates(events: tuple[Event, ...]) -> tuple[GateSeries, ...]:
    series: dict[str, list[GatePoint]] = {}
    kinds: dict[str, tuple[str, str]] = {}
    for event in events:
        if event.event is not EventKind.LOOK:
            continue
        stage = int(event.data.get("stage", event.state.get("stage", 0)))
        for verdict in (event.data.get("verdict") or {}).get("verdicts") or []:
            key = str(verdict.get("gate"))
            kinds.setdefault(key, (str(verdict.get("metric", key)), str(verdict.get("unit", ""))))
            low, high = (verdict.get("interval") or [None, None])[:2]
            series.setdefault(key, []).append(
                GatePoint(
                    at=event.at,
                    stage=stage,
                    outcome=str(verdict.get("outcome", "")),
                    estimate=_finite(verdict.get("estimate")),
                    lower=_finite(low),
                    upper=_finite(high),
                    allowed=_finite(verdict.get("allowed")),
                    e_value=_finite(verdict.get("e_value")),
                    p_value=_finite(verdict.get("p_value")),
                    alpha=float(verdict.get("alpha") or 0.0),
                    sentence=str(verdict.get("sentence", "")),
                )
            )
    return tuple(GateSeries(k, *kinds[k], tuple(points)) for k, points in series.items())


def _finite(value: object) -> float | None:
    """A journaled number, or None for null, "inf" and NaN (a bound not decided yet)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _markers(plan: Plan, events: tuple[Event, ...]) -> tuple[Marker, ...]:
    marks: list[Marker] = []
    for event in events:
        if event.event is EventKind.STAGE_STARTED:
            number = int(event.data.get("stage", 0))
            name = plan.stages[number].name if number < len(plan.stages) else ""
            marks.append(Marker(event.at, "stage", f"stage {number + 1} {name}", event.reason))
        elif event.event in MARKED:
            marks.append(Marker(event.at, event.event.value, MARKED[event.event], event.reason))
        elif event.event in DECISIONS or event.event in ENDS:
            marks.append(Marker(event.at, "decision", event.event.value, event.reason))
    return tuple(marks)


def _traffic(events: tuple[Event, ...]) -> tuple[TrafficPoint, ...]:
    points: list[TrafficPoint] = []
    since: float | None = None
    for event in events:
        if event.event is EventKind.STAGE_STARTED:
            since = event.at  # a stage's first look counts from its start
        if event.event is not EventKind.LOOK:
            continue
        traffic = event.data.get("traffic")
        if isinstance(traffic, dict):
            pairs = traffic.get("pairs")
            points.append(
                TrafficPoint(
                    at=event.at,
                    seconds=max(event.at - since, 1e-3) if since is not None else 0.0,
                    stage=int(event.data.get("stage", 0)),
                    rows={
                        side: list(row)
                        for side, row in traffic.items()
                        if side != "pairs" and isinstance(row, list)
                    },
                    pairs=(int(pairs[0]), int(pairs[1])) if isinstance(pairs, list) else None,
                )
            )
        since = event.at
    return tuple(points)


def _routes(events: tuple[Event, ...]) -> tuple[RouteStep, ...]:
    steps: list[RouteStep] = []
    for event in events:
        route = event.data.get("route")
        if isinstance(route, dict) and event.event in (
            EventKind.STAGE_STARTED,
            EventKind.ROLLED_BACK,
            EventKind.ABORTED,
            EventKind.SUPERSEDED,
        ):
            inner = route.get("route", route)  # an Applied (route and lease) or a RouteSpec
            if isinstance(inner, dict):
                weight = float(inner.get("weight", 0.0))
                mirror = float(inner.get("mirror", 0.0))
                steps.append(RouteStep(event.at, weight, mirror, event.event.value))
        elif event.event is EventKind.PROMOTED:
            steps.append(RouteStep(event.at, 1.0, 0.0, "promoted: the candidate is the baseline"))
    return tuple(steps)
