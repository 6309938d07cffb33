"""The stage loop as a pure step: (plan, state, observation) -> (state, actions).

Nothing here sleeps, reads a clock or does I/O. The runner (`runner.py`) turns
the actions into writes to the serving endpoint, the registry and the journal,
and feeds what it saw back in as observations. Every transition carries a
`Record` action first, so the journal holds the decision before it is acted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gray.controller import gates
from gray.controller.gates.detectability import missed_regressions
from gray.controller.gates.increments import increment
from gray.controller.journal.events import EventKind
from gray.controller.plan.models import Plan
from gray.controller.plan.units import format_duration, format_share
from gray.controller.state import Phase, RolloutState
from gray.controller.traffic import look_traffic
from gray.controller.types import Applied, Pair, RouteSpec, Snapshot

# --- observations: what the runner saw --------------------------------------


@dataclass(frozen=True)
class Look:
    """A periodic look: the newest counters (or why there are none) and the route in force."""

    now: float
    snapshot: Snapshot | None
    route: Applied | None = None
    metrics_error: str | None = None


@dataclass(frozen=True)
class StageRouted:
    """The stage's route was written, read back and verified; `origin` is read right after."""

    now: float
    applied: Applied
    origin: Snapshot
    fresh: bool  # False when an existing stage's route was re-confirmed after a resume


@dataclass(frozen=True)
class RolledBack:
    now: float
    applied: Applied


@dataclass(frozen=True)
class Promoted:
    now: float
    moves: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class CommandReceived:
    now: float
    command: str  # approve | pause | unpause | abort | promote
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class LeaseLost:
    """Someone else holds the endpoint with a newer lease (an operator's `gray rollback`)."""

    now: float
    applied: Applied | None
    reason: str


@dataclass(frozen=True)
class EndpointLost:
    """The endpoint, registry or metrics source failed beyond the retry limit."""

    now: float
    reason: str


@dataclass(frozen=True)
class HookAnswered:
    """How one of the plan's webhooks answered a `CallHook` (`hooks.py`)."""

    now: float
    call: CallHook
    ok: bool  # a 2xx within the hook's timeout
    reason: str  # one sentence: the hook, its answer or failure, how long it took
    status: int | None = None


Observation = (
    Look
    | StageRouted
    | RolledBack
    | Promoted
    | CommandReceived
    | LeaseLost
    | EndpointLost
    | HookAnswered
)

# --- actions: what the runner must do, in order ------------------------------


@dataclass(frozen=True)
class Record:
    """Write an event, with the state after this step, to the journal."""

    event: EventKind
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyStage:
    route: RouteSpec
    fresh: bool = True


@dataclass(frozen=True)
class Rollback:
    reason: str


@dataclass(frozen=True)
class Promote:
    pass


@dataclass(frozen=True)
class Notify:
    event: str  # one of plan.NOTIFY_EVENTS
    text: str


@dataclass(frozen=True)
class Stop:
    exit_code: int
    reason: str


@dataclass(frozen=True)
class CallHook:
    """Ask the plan's `hook` webhook (about stage index `stage`); the answer comes back as
    HookAnswered. `resumed`: asked again by a resumed controller, traffic may have moved."""

    hook: str  # one of plan.HOOK_KINDS
    stage: int | None = None
    resumed: bool = False


Action = Record | ApplyStage | Rollback | Promote | Notify | Stop | CallHook


@dataclass(frozen=True)
class Step:
    state: RolloutState
    actions: tuple[Action, ...] = ()


# How long a metrics source may keep failing before the rollout stops (exit 4).
METRICS_GRACE_LOOKS = 3
METRICS_GRACE_MIN_SECONDS = 30.0


def stage_route(plan: Plan, state: RolloutState, index: int) -> RouteSpec:
    stage = plan.stages[index]
    return RouteSpec(
        baseline=state.baseline,
        candidate=state.candidate,
        weight=stage.weight,
        mirror=stage.mirror,
        audience=stage.audience.to_audience(),
    )


def begin(plan: Plan, state: RolloutState) -> Step:
    """A new rollout: record it, then route the first stage."""
    reason = (
        f"rollout of {state.model} {state.candidate_ref}=v{state.candidate} against "
        f"{state.baseline_ref}=v{state.baseline}, {len(plan.stages)} stages"
    )
    if state.retry_of:
        reason += f"; a retry of {state.retry_of}"
    state = state.with_(phase=Phase.STARTING, stage=0, reason=reason)
    link = {"retry_of": state.retry_of} if state.retry_of else {}
    started = Record(EventKind.STARTED, reason, {"plan": plan.name, **link})
    if plan.hooks.pre_rollout is not None:  # the smoke test comes before any traffic
        return Step(state, (started, CallHook("pre_rollout")))
    return Step(state, (started, Notify("start", reason), *_enter_stage(plan, state)))


def resume(
    plan: Plan, state: RolloutState, now: float, until_stage: int | None, *, watch: bool = False
) -> Step:
    """Continue a rollout from its journal, after a crash or a hold.

    `watch`: a rollout that holds traffic (`--until-stage` reached, or waiting for an
    approval) stays where it is, and its gates keep judging: a FAIL still rolls back.
    This is the watcher a controller leaves behind when it exits with traffic held."""
    state = state.with_(until_stage=until_stage)
    reason = f"resumed in phase {state.phase.value} at stage {_stage_label(plan, state.stage)}"
    record = Record(EventKind.RESUMED, reason, {"epoch": state.epoch})
    phase = state.phase
    if watch and phase in (Phase.HELD, Phase.WAITING_APPROVAL):
        reason = (
            f"watching stage {_stage_label(plan, state.stage)} while it holds traffic: the gates "
            f"keep judging and a FAIL rolls back; `gray rollout resume {state.rollout_id}` "
            "takes over"
        )
        route = stage_route(plan, state, state.stage)
        return Step(
            state.with_(reason=reason),
            (Record(EventKind.WATCHING, reason), ApplyStage(route, fresh=False)),
        )
    if phase is Phase.HELD:
        step = _advance(plan, state.with_(reason=reason), now)
        return Step(step.state, (record, *step.actions))
    if phase is Phase.STARTING:
        first = state.stage == 0 and not state.history and state.stage_started_at is None
        if first and plan.hooks.pre_rollout is not None:
            # Whether the smoke test answered before the crash is unknown: ask again.
            return Step(state, (record, CallHook("pre_rollout", resumed=True)))
        return Step(state, (record, *_enter_stage(plan, state, resumed=True)))
    if phase in (Phase.RUNNING, Phase.PAUSED, Phase.WAITING_APPROVAL):
        route = stage_route(plan, state, state.stage)
        return Step(state, (record, ApplyStage(route, fresh=False)))
    if phase is Phase.ROLLING_BACK:
        return Step(state, (record, Rollback(state.reason)))
    if phase is Phase.PROMOTING:
        return Step(state, (record, Promote()))
    return Step(state, (Stop(state.exit_code or 0, f"rollout already {phase.value}"),))


def tick(plan: Plan, state: RolloutState, observation: Observation) -> Step:
    """One step of the loop."""
    if state.phase.terminal:
        return Step(state)
    match observation:
        case StageRouted():
            return _on_routed(plan, state, observation)
        case Look():
            return _on_look(plan, state, observation)
        case RolledBack():
            return _on_rolled_back(plan, state, observation)
        case HookAnswered():
            return _on_hook(plan, state, observation)
        case Promoted():
            return _on_promoted(plan, state, observation)
        case CommandReceived():
            return _on_command(plan, state, observation)
        case LeaseLost():
            return _on_lease_lost(state, observation)
        case EndpointLost():
            reason = f"{observation.reason}; traffic left as last verified, resume with "
            reason += f"`gray rollout resume {state.rollout_id}`"
            return Step(
                state.with_(reason=reason, updated_at=observation.now),
                (Record(EventKind.ENDPOINT_LOST, reason), Stop(4, reason)),
            )
    raise TypeError(f"unknown observation {observation!r}")


# --- transitions --------------------------------------------------------------


def _on_routed(plan: Plan, state: RolloutState, seen: StageRouted) -> Step:
    stage = plan.stages[state.stage]
    route = seen.applied.route
    label = _stage_label(plan, state.stage)
    if not seen.fresh:
        # A resumed controller re-confirmed the route: the stage's clock, origin
        # and gate state carry on from the journal.
        reason = f"stage {label} route re-confirmed under epoch {state.epoch}"
        return Step(state.with_(reason=reason), (Record(EventKind.ROUTE_VERIFIED, reason),))
    exposure = stage.exposure
    judge = gates.start_stage(
        plan.stage_gates(state.stage),
        plan.alpha,
        seen.origin,
        exposure=exposure,
        mirrored=stage.mirror > 0,
    )
    origin_requests = _candidate_requests(seen.origin, exposure)
    reason = (
        f"stage {label}: candidate answers {format_share(route.weight)}"
        + (f", mirror {format_share(route.mirror)}" if route.mirror else "")
        + ("" if route.audience.is_everyone else " of its audience")
        + f" for {format_duration(stage.dwell)}"
    )
    new = state.with_(
        phase=Phase.RUNNING,
        stage_started_at=seen.now,
        deadline=seen.now + stage.dwell,
        dwell_left=None,
        extensions=0,
        nodata_since=None,
        judge=judge.to_dict(),
        last_verdict=None,
        origin_candidate_requests=origin_requests,
        stage_candidate_requests=0,
        metrics_failing_since=None,
        reason=reason,
        updated_at=seen.now,
    )
    return Step(
        new,
        (
            Record(
                EventKind.STAGE_STARTED, reason, {"route": route.to_dict(), "stage": state.stage}
            ),
            Notify("stage", reason),
        ),
    )


def _on_look(plan: Plan, state: RolloutState, look: Look) -> Step:
    if look.route is not None and superseded(state, look.route):
        return _on_lease_lost(
            state,
            LeaseLost(look.now, look.route, "the serving endpoint is held by a newer lease"),
        )
    if state.phase not in (Phase.RUNNING, Phase.PAUSED, Phase.WAITING_APPROVAL, Phase.HELD):
        return Step(state)
    if look.snapshot is None:
        return _on_metrics_failure(plan, state, look)
    state = state.with_(metrics_failing_since=None)
    if state.judge is None:
        return Step(state)
    before = gates.JudgeState.from_dict(state.judge)
    judge_state, verdict = gates.observe(before, look.snapshot)
    requests = _stage_requests(state, before, look.snapshot)
    state = state.with_(
        stage_candidate_requests=requests,
        judge=judge_state.to_dict(),
        last_verdict=verdict.to_dict(),
        last_look_at=look.now,
        updated_at=look.now,
    )
    record = Record(
        EventKind.LOOK,
        verdict.sentence(),
        {
            "verdict": verdict.to_dict(),
            "candidate_requests": requests,
            "stage": state.stage,
            "traffic": look_traffic(before.previous, look.snapshot),
        },
    )
    if verdict.outcome is gates.Outcome.FAIL:
        failed = [v for v in verdict.verdicts if v.outcome is gates.Outcome.FAIL]
        reason = "; ".join(v.sentence() for v in failed)
        return _start_rollback(
            state, look.now, f"stage {_stage_label(plan, state.stage)}: {reason}", record
        )
    if state.phase is not Phase.RUNNING or state.deadline is None or look.now < state.deadline:
        if state.phase is Phase.RUNNING and _may_end_early(plan, state, look.now, verdict):
            return _end_early(plan, state, look.now, verdict, requests, record)
        return Step(state, (record, *_confirm_again(plan, state)))
    return _end_of_dwell(plan, state, look.now, verdict, requests, record)


def dwell_elapsed(plan: Plan, state: RolloutState, now: float) -> float:
    """How much of the stage's dwell (with its extensions) has run, on the dwell clock:
    a pause stops it, so this is what the deadline left, not the time since the start."""
    stage = plan.stages[state.stage]
    policy = plan.policies.inconclusive
    extend = policy.extend if policy.extend is not None else stage.dwell
    longest = stage.dwell + state.extensions * extend
    return longest - max((state.deadline if state.deadline is not None else now) - now, 0.0)


def _may_end_early(
    plan: Plan, state: RolloutState, now: float, verdict: gates.StageVerdict
) -> bool:
    """Every gate passes, the stage's min_dwell is over and its min_requests reached."""
    shortest = plan.stage_min_dwell(state.stage)
    return (
        shortest is not None
        and verdict.outcome is gates.Outcome.PASS
        and (state.stage_candidate_requests or 0) >= plan.stages[state.stage].min_requests
        and dwell_elapsed(plan, state, now) >= shortest
    )


def _end_early(
    plan: Plan,
    state: RolloutState,
    now: float,
    verdict: gates.StageVerdict,
    requests: int,
    record: Record,
) -> Step:
    stage = plan.stages[state.stage]
    elapsed = dwell_elapsed(plan, state, now)
    saved = max((state.deadline or now) - now, 0.0)
    shortest = plan.stage_min_dwell(state.stage) or 0.0
    numbers = {
        "elapsed_seconds": elapsed,
        "dwell_seconds": stage.dwell,
        "min_dwell_seconds": shortest,
        "saved_seconds": saved,
        "candidate_requests": requests,
        "min_requests": stage.min_requests,
        "extensions": state.extensions,
    }
    extended = f" and {state.extensions} extension(s)" if state.extensions else ""
    reason = (
        f"stage {_stage_label(plan, state.stage)} passed early after "
        f"{format_duration(max(elapsed, 0.001))} of its {format_duration(stage.dwell)} dwell"
        f"{extended}, {format_duration(max(saved, 0.001))} saved: every gate passes, min_dwell "
        f"{format_duration(max(shortest, 0.001))} is over and {requests:,} candidate requests "
        f"reached min_requests {stage.min_requests:,}: {verdict.sentence()}"
    )
    return _stage_passed(
        plan,
        state.with_(reason=reason),
        now,
        record,
        verdict,
        event=EventKind.STAGE_PASSED_EARLY,
        data={"early": numbers},
    )


def _end_of_dwell(
    plan: Plan,
    state: RolloutState,
    now: float,
    verdict: gates.StageVerdict,
    requests: int,
    record: Record,
) -> Step:
    stage = plan.stages[state.stage]
    label = _stage_label(plan, state.stage)
    outcome = verdict.outcome
    if outcome is gates.Outcome.PASS and requests < stage.min_requests:
        outcome = gates.Outcome.INCONCLUSIVE
        short = f"only {requests:,} of the {stage.min_requests:,} candidate requests required"
    else:
        short = verdict.sentence()
    if outcome is gates.Outcome.PASS:
        took = format_duration(max(now - (state.stage_started_at or now), 0.001))
        reason = f"stage {label} passed after {took}: {short}"
        return _stage_passed(plan, state.with_(reason=reason), now, record, verdict)
    if outcome is gates.Outcome.NODATA:
        since = state.nodata_since if state.nodata_since is not None else now
        held = now - since
        if held >= plan.policies.no_data.hold:
            reason = (
                f"stage {label}: no data for the candidate for {format_duration(held)} "
                "past its dwell "
                f"(limit {format_duration(plan.policies.no_data.hold)}): {short}"
            )
            return _start_rollback(state, now, reason, record)
        if state.nodata_since is None:
            hold = format_duration(plan.policies.no_data.hold)
            reason = f"stage {label}: dwell over but no data yet; holding up to {hold}"
            return Step(
                state.with_(nodata_since=now, reason=reason),
                (record, Record(EventKind.NODATA_HOLD, reason)),
            )
        return Step(state, (record,))
    policy = plan.policies.inconclusive
    if state.extensions < policy.max_extensions:
        extend = policy.extend if policy.extend is not None else stage.dwell
        reason = (
            f"stage {label} inconclusive at the end of its dwell ({short}); extended by "
            f"{format_duration(extend)} ({state.extensions + 1} of {policy.max_extensions})"
        )
        new = state.with_(deadline=now + extend, extensions=state.extensions + 1, reason=reason)
        return Step(new, (record, Record(EventKind.STAGE_EXTENDED, reason)))
    if policy.then == "pass":
        reason = f"stage {label} still inconclusive after {state.extensions} extension(s); "
        reason += f"plan says pass: {short}"
        missed = _could_have_missed(state, verdict)
        if missed:
            reason += "; what it could have missed: " + "; ".join(m["sentence"] for m in missed)
        data = {"missed": missed}
        return _stage_passed(plan, state.with_(reason=reason), now, record, verdict, data=data)
    reason = f"stage {label} still inconclusive after {state.extensions} extension(s); "
    reason += f"plan says fail: {short}"
    return _start_rollback(state, now, reason, record)


def _could_have_missed(state: RolloutState, verdict: gates.StageVerdict) -> list[dict[str, Any]]:
    """What the undecided gates could have missed, from the traffic the stage saw: a
    stage that passes by policy says how large a regression could hide in it."""
    if state.judge is None:
        return []
    return missed_regressions(gates.JudgeState.from_dict(state.judge), verdict)


def _stage_passed(
    plan: Plan,
    state: RolloutState,
    now: float,
    record: Record,
    verdict: gates.StageVerdict,
    event: EventKind = EventKind.STAGE_PASSED,
    data: dict[str, Any] | None = None,
) -> Step:
    stage = plan.stages[state.stage]
    result = {
        "stage": state.stage,
        "name": stage.name,
        "outcome": "passed",
        "at": now,
        "reason": state.reason,
        **(data or {}),
    }
    state = state.with_(history=(*state.history, result), nodata_since=None)
    passed = Record(
        event, state.reason, {"verdict": verdict.to_dict(), "stage": state.stage, **(data or {})}
    )
    if plan.hooks.post_stage is not None:
        return Step(state, (record, passed, CallHook("post_stage", state.stage)))
    step = _after_stage_passed(plan, state, now)
    return Step(step.state, (record, passed, *step.actions))


def _after_stage_passed(plan: Plan, state: RolloutState, now: float) -> Step:
    """A passed stage (its post_stage hook, if any, agreed): wait, hold, or move on."""
    stage = plan.stages[state.stage]
    if stage.approval:
        reason = (
            f"stage {_stage_label(plan, state.stage)} passed; waiting for approval, traffic held "
            f"(gray rollout approve {state.rollout_id})"
        )
        new = state.with_(phase=Phase.WAITING_APPROVAL, reason=reason, deadline=None)
        return Step(new, (Record(EventKind.WAITING_APPROVAL, reason), Notify("approval", reason)))
    if state.until_stage is not None and state.stage >= state.until_stage:
        reason = (
            f"stage {_stage_label(plan, state.stage)} passed; stopping here as asked "
            "(--until-stage), "
            f"traffic held. Continue with `gray rollout resume {state.rollout_id}`"
        )
        new = state.with_(phase=Phase.HELD, reason=reason, deadline=None)
        return Step(new, (Record(EventKind.HELD, reason), Stop(3, reason)))
    return _advance(plan, state, now)


def _advance(plan: Plan, state: RolloutState, now: float) -> Step:
    """On to the next stage, or promote after the last."""
    if state.stage + 1 >= len(plan.stages):
        confirmed = state.resume_after_hold == "promote"  # approved over the hook's answer
        if plan.hooks.confirm_promotion is not None and not confirmed:
            return Step(
                state.with_(deadline=None, updated_at=now), (CallHook("confirm_promotion"),)
            )
        reason = f"all {len(plan.stages)} stages passed; promoting v{state.candidate}"
        return _promote_now(state, now, reason)
    nxt = state.stage + 1
    new = state.with_(
        phase=Phase.STARTING,
        stage=nxt,
        deadline=None,
        stage_started_at=None,
        judge=None,
        last_verdict=None,
        updated_at=now,
    )
    return Step(new, _enter_stage(plan, new))


def _enter_stage(plan: Plan, state: RolloutState, resumed: bool = False) -> tuple[Action, ...]:
    """Route the current stage, after its pre_stage hook agrees when the plan has one."""
    if plan.hooks.pre_stage is not None:
        return (CallHook("pre_stage", state.stage, resumed),)
    return (ApplyStage(stage_route(plan, state, state.stage)),)


def _promote_now(state: RolloutState, now: float, reason: str) -> Step:
    new = state.with_(
        phase=Phase.PROMOTING,
        reason=reason,
        deadline=None,
        resume_after_hold=None,
        updated_at=now,
    )
    return Step(new, (Record(EventKind.PROMOTING, reason), Promote()))


def _confirm_again(plan: Plan, state: RolloutState) -> tuple[Action, ...]:
    """A promotion held by its confirm_promotion hook asks it again at every look."""
    if state.phase is Phase.WAITING_APPROVAL and state.resume_after_hold == "promote":
        return (CallHook("confirm_promotion"),)
    return ()


def _on_hook(plan: Plan, state: RolloutState, answer: HookAnswered) -> Step:
    """What a hook's answer means: go on, roll back, stop before traffic, or hold."""
    call, now = answer.call, answer.now
    record = hook_record(answer)
    label = _stage_label(plan, state.stage)
    if call.hook == "on_rollback":  # told after the end; nothing to decide
        return Step(state, (record,))
    if answer.ok:
        if call.hook == "pre_rollout":
            actions = (Notify("start", state.reason), *_enter_stage(plan, state, call.resumed))
            return Step(state, (record, *actions))
        if call.hook == "pre_stage":
            return Step(state, (record, ApplyStage(stage_route(plan, state, state.stage))))
        if call.hook == "post_stage":
            step = _after_stage_passed(plan, state, now)
            return Step(step.state, (record, *step.actions))
        if call.hook == "confirm_promotion":
            reason = f"all {len(plan.stages)} stages passed, {answer.reason}; promoting"
            step = _promote_now(state, now, f"{reason} v{state.candidate}")
            return Step(step.state, (record, *step.actions))
        raise ValueError(f"unknown hook {call.hook!r}")
    if call.hook == "pre_rollout" and not call.resumed:
        reason = f"{answer.reason}; stopped before any traffic moved, nothing changed"
        new = state.with_(phase=Phase.ABORTED, reason=reason, ended_at=now, updated_at=now)
        # One record ends a rollout: the hook's answer travels in the `aborted` event.
        return Step(new, (Record(EventKind.ABORTED, reason, record.data), Stop(2, reason)))
    if call.hook == "confirm_promotion":
        if state.resume_after_hold == "promote":
            return Step(state, (record,))  # still held; asked again at the next look
        reason = (
            f"{answer.reason}; promotion held at stage {label}, traffic held. The hook is "
            f"asked again at every look; `gray rollout approve {state.rollout_id}` promotes "
            "without it"
        )
        new = state.with_(
            phase=Phase.WAITING_APPROVAL, resume_after_hold="promote", reason=reason, deadline=None
        )
        return Step(
            new, (record, Record(EventKind.WAITING_APPROVAL, reason), Notify("approval", reason))
        )
    # pre_stage, post_stage, or a resumed pre_rollout: candidate traffic may be in force.
    reason = f"stage {label}: {answer.reason}"
    return _start_rollback(state, now, reason, record, event=EventKind.HOOK_ROLLBACK)


def hook_record(answer: HookAnswered) -> Record:
    """The journal entry for a hook's answer (also written by the runner for on_rollback,
    whose answer comes after the rollout ended and changes nothing)."""
    data = {"hook": answer.call.hook, "stage": answer.call.stage, "status": answer.status}
    kind = EventKind.HOOK_PASSED if answer.ok else EventKind.HOOK_FAILED
    return Record(kind, answer.reason, data)


def _start_rollback(
    state: RolloutState,
    now: float,
    reason: str,
    record: Record | None,
    kind: str = "rolled_back",
    event: EventKind | None = None,
) -> Step:
    new = state.with_(phase=Phase.ROLLING_BACK, rollback_kind=kind, reason=reason, updated_at=now)
    records = (record,) if record else ()
    failed = kind == "rolled_back"
    event = event or (EventKind.GATE_FAILED if failed else EventKind.ABORT_REQUESTED)
    return Step(new, (*records, Record(event, reason), Rollback(reason)))


def _on_rolled_back(plan: Plan, state: RolloutState, seen: RolledBack) -> Step:
    aborted = state.rollback_kind == "aborted"
    phase = Phase.ABORTED if aborted else Phase.ROLLED_BACK
    verb = "aborted" if aborted else "rolled back"
    reason = f"{verb}: baseline v{state.baseline} answers 100 %. {state.reason}"
    new = state.with_(
        phase=phase, reason=reason, ended_at=seen.now, deadline=None, updated_at=seen.now
    )
    event = EventKind.ABORTED if aborted else EventKind.ROLLED_BACK
    return Step(
        new,
        (
            Record(event, reason, {"route": seen.applied.to_dict()}),
            Notify("abort" if aborted else "rollback", reason),
            *((CallHook("on_rollback"),) if plan.hooks.on_rollback is not None else ()),
            Stop(1, reason),
        ),
    )


def _on_promoted(plan: Plan, state: RolloutState, seen: Promoted) -> Step:
    moved = ", ".join(f"@{m['alias']} → v{m['to_version']}" for m in seen.moves) or "no alias moved"
    reason = f"promoted v{state.candidate}: {moved}"
    new = state.with_(phase=Phase.PROMOTED, reason=reason, ended_at=seen.now, updated_at=seen.now)
    return Step(
        new,
        (
            Record(EventKind.PROMOTED, reason, {"moves": list(seen.moves)}),
            Notify("promote", reason),
            Stop(0, reason),
        ),
    )


def _on_command(plan: Plan, state: RolloutState, cmd: CommandReceived) -> Step:
    by = f" by {cmd.actor}" + (f": {cmd.reason}" if cmd.reason else "")
    label = _stage_label(plan, state.stage)
    ignored = Step(
        state,
        (
            Record(
                EventKind.COMMAND_IGNORED, f"{cmd.command}{by} ignored in phase {state.phase.value}"
            ),
        ),
    )
    if cmd.command == "approve":
        if state.phase is not Phase.WAITING_APPROVAL:
            return ignored
        reason = f"stage {label} approved{by}"
        step = _advance(plan, state.with_(reason=reason), cmd.now)
        return Step(step.state, (Record(EventKind.APPROVED, reason), *step.actions))
    if cmd.command == "pause":
        if state.phase is not Phase.RUNNING:
            return ignored
        left = max(0.0, (state.deadline or cmd.now) - cmd.now)
        left_text = format_duration(max(left, 0.001))
        reason = f"paused{by}; traffic held at stage {label} with {left_text} of dwell left"
        new = state.with_(phase=Phase.PAUSED, dwell_left=left, deadline=None, reason=reason)
        return Step(new, (Record(EventKind.PAUSED, reason), Notify("pause", reason)))
    if cmd.command == "unpause":
        if state.phase is not Phase.PAUSED:
            return ignored
        left = state.dwell_left or 0.0
        reason = f"unpaused{by}; stage {label} continues for {format_duration(max(left, 0.001))}"
        new = state.with_(
            phase=Phase.RUNNING, deadline=cmd.now + left, dwell_left=None, reason=reason
        )
        return Step(new, (Record(EventKind.UNPAUSED, reason),))
    if cmd.command == "abort":
        if state.phase in (Phase.ROLLING_BACK, Phase.PROMOTING):
            return ignored
        return _start_rollback(state, cmd.now, f"aborted{by}", None, kind="aborted")
    if cmd.command == "promote":
        if state.phase in (Phase.ROLLING_BACK, Phase.PROMOTING):
            return ignored
        reason = f"promotion forced{by}, skipping stages after {label}"
        new = state.with_(phase=Phase.PROMOTING, reason=reason, deadline=None, updated_at=cmd.now)
        return Step(new, (Record(EventKind.PROMOTE_OVERRIDE, reason), Promote()))
    return ignored


def _on_lease_lost(state: RolloutState, lost: LeaseLost) -> Step:
    holder = lost.applied.lease if lost.applied else None
    who = f"{holder.rollout_id} (epoch {holder.epoch})" if holder else "another writer"
    rolled_back = (
        lost.applied is not None
        and lost.applied.route.weight == 0
        and lost.applied.route.mirror == 0
    )
    if holder and holder.rollout_id == state.rollout_id:
        who = (
            f"epoch {holder.epoch} of this rollout (an operator's rollback or a resumed controller)"
        )
    if rolled_back or (holder and holder.rollout_id == state.rollout_id):
        # An operator's `gray rollback` (or a resumed controller) took over.
        phase = Phase.ROLLED_BACK if rolled_back else state.phase
        reason = f"{lost.reason}; the endpoint is now held by {who}; this controller stops writing"
        new = state.with_(phase=phase, reason=reason, ended_at=lost.now if rolled_back else None)
        if not rolled_back:
            # A resumed controller journals on: a record of this stale state would hide its.
            return Step(new, (Stop(4, reason),))
        return Step(new, (Record(EventKind.SUPERSEDED, reason), Stop(1, reason)))
    reason = f"{lost.reason}: now held by {who}; stopping without touching the route"
    return Step(state.with_(reason=reason), (Record(EventKind.SUPERSEDED, reason), Stop(4, reason)))


def _on_metrics_failure(plan: Plan, state: RolloutState, look: Look) -> Step:
    since = state.metrics_failing_since if state.metrics_failing_since is not None else look.now
    grace = max(METRICS_GRACE_LOOKS * plan.interval, METRICS_GRACE_MIN_SECONDS)
    error = look.metrics_error or "no snapshot"
    if look.now - since >= grace:
        reason = (
            f"metrics source failing for {format_duration(max(look.now - since, 0.001))} "
            f"({error}); "
            f"traffic left at stage {_stage_label(plan, state.stage)}, resume with "
            f"`gray rollout resume {state.rollout_id}`"
        )
        return Step(
            state.with_(reason=reason), (Record(EventKind.METRICS_LOST, reason), Stop(4, reason))
        )
    return Step(
        state.with_(metrics_failing_since=since),
        (Record(EventKind.METRICS_ERROR, f"metrics source failed: {error}"),),
    )


def superseded(state: RolloutState, applied: Applied) -> bool:
    """Whether `applied` was written under a lease newer than this rollout's."""
    lease = applied.lease
    if lease is None:
        return False
    if lease.epoch > state.epoch:
        return True
    return lease.epoch == state.epoch and lease.rollout_id != state.rollout_id


def _stage_requests(state: RolloutState, judge: gates.JudgeState, snapshot: Snapshot) -> int:
    """The candidate's exposures in this stage, counted look by look like the gates count
    them: counters that went down (the endpoint restarted) add nothing, then count again."""
    counted = state.stage_candidate_requests
    if counted is None:
        counted = max(
            0, _candidate_requests(judge.previous, judge.exposure) - state.origin_candidate_requests
        )
    return counted + increment(judge.previous, snapshot, judge.exposure).candidate.requests


def _candidate_requests(snapshot: Snapshot, exposure: str) -> int:
    if exposure == "shadow":
        return snapshot.shadow.candidate.requests
    return snapshot.candidate.requests


def _stage_label(plan: Plan, index: int) -> str:
    return f"{index + 1}/{len(plan.stages)} ({plan.stages[index].name})"


def pair_of(state: RolloutState) -> Pair:
    return Pair(baseline=state.baseline, candidate=state.candidate)
