"""The thin runner around the pure loop: it sleeps, does the I/O, and feeds back what it saw."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gray.controller import hooks, loop
from gray.controller.errors import (
    AliasConflictError,
    GrayError,
    LeaseConflictError,
    LeaseExpiredError,
    MetricsError,
    RegistryError,
    RouterError,
    RouteVerificationError,
)
from gray.controller.journal import Event, EventKind, Journal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.metrics.base import MetricsSource
from gray.controller.notify import Notifier
from gray.controller.plan.models import Plan
from gray.controller.routers.base import FleetRouter, Router
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied, Lease, RouteSpec, Snapshot

# Commands are polled this often while waiting between looks, so an approval or an
# abort takes effect within about a second whatever the plan's interval.
COMMAND_POLL_SECONDS = 1.0
ORIGIN_SNAPSHOT_TRIES = 3
# Without router.lease_ttl, candidate traffic outlives a silent controller by this many
# intervals, and never by less than the floor.
LEASE_TTL_INTERVALS = 3
LEASE_TTL_FLOOR_SECONDS = 30.0


def lease_ttl(plan: Plan) -> float:
    """Seconds the endpoint keeps candidate traffic after the controller's last renewal."""
    if plan.router.lease_ttl is not None:
        return plan.router.lease_ttl
    return max(LEASE_TTL_INTERVALS * plan.interval, LEASE_TTL_FLOOR_SECONDS)


# How long a controller that lost its lease to a rollback waits for the operator's record.
OPERATOR_RECORD_POLLS = 20
OPERATOR_RECORD_POLL_SECONDS = 0.1
# How long a finished controller waits for MLflow to take the journal's last events.
MLFLOW_DRAIN_SECONDS = 10.0


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Promoter(Protocol):
    """The registry operations a running rollout needs: the promotion that ends it (and its
    undoing when the endpoint refuses it), the rolled-back tag, and the alias checks."""

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: Any,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[Any]: ...
    def alias_points_at(self, name: str, alias: str, version: str) -> bool: ...
    def drift_from(self, model: Any, baseline: str, candidate: str) -> list[str]: ...
    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None: ...
    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        expected_from: str | None,
        rollout_id: str | None,
        reason: str,
    ) -> Any: ...


@dataclass(frozen=True)
class RunResult:
    state: RolloutState
    exit_code: int
    reason: str


class Runner:
    def __init__(
        self,
        plan: Plan,
        router: Router,
        metrics: MetricsSource,
        registry: Promoter | None,
        journal: Journal,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        exit_on_hold: bool = False,
        drain_seconds: float = MLFLOW_DRAIN_SECONDS,
        hold_traffic: bool = False,
    ) -> None:
        self.plan = plan
        self.router = router
        self.metrics = metrics
        self.registry = registry
        self.journal = journal
        self.notifier = notifier
        self.hooks = hooks.HookCaller(plan.hooks)
        self.clock = clock or SystemClock()
        self.on_event = on_event or (lambda event: None)
        self.on_warning = on_warning or (lambda text: None)
        self.exit_on_hold = exit_on_hold
        self.drain_seconds = drain_seconds
        self.hold_traffic = hold_traffic  # every stage's traffic kept with no lease expiry
        self.state: RolloutState | None = None
        self._seen_commands: set[str] = set()
        self._reported_drift: set[str] = set()
        # MLflow work runs on the journal's background thread when there is one, so a hung
        # tracking server never sits between a decision and the endpoint write.
        remote = journal.remote
        self.background = remote if isinstance(remote, BackgroundRemote) else None
        self._deferred: list[tuple[str, Callable[[], None]]] = []
        self._drift_lock = threading.Lock()
        self._drift_found: list[str] = []

    # --- the outer loop -------------------------------------------------------

    def run(self, step: loop.Step) -> RunResult:
        self._seen_commands = set(self._consumed_commands(step.state))
        try:
            return self._run(step)
        finally:
            self._finish()

    def _run(self, step: loop.Step) -> RunResult:
        result = self._apply(step)
        last_look = self.clock.now()
        while result is None:
            self._report_drift_found()
            result = self._commands()
            if result is not None:
                break
            assert self.state is not None
            if self._should_exit_on_hold():
                return RunResult(self.state, 3, self.state.reason)
            if self.clock.now() - last_look >= self.plan.interval:
                last_look = self.clock.now()
                result = self._apply(loop.tick(self.plan, self.state, self._look()))
                continue
            wait = min(COMMAND_POLL_SECONDS, self.plan.interval - (self.clock.now() - last_look))
            self.clock.sleep(max(wait, 0.0))
        return result

    def _after_write(self, what: str, chore: Callable[[], None]) -> None:
        """MLflow bookkeeping that must not delay what follows: in the background when the
        journal has a background thread, else when the run ends."""
        if self.background is not None:
            self.background.submit(what, chore)
        else:
            self._deferred.append((what, chore))

    def _finish(self) -> None:
        for what, chore in self._deferred:
            try:
                chore()
            except GrayError as exc:
                self.on_warning(f"{what} failed: {exc.message}")
        self._deferred.clear()
        if self.background is None:
            return
        if not self.background.close(self.drain_seconds):
            rollout = self.state.rollout_id if self.state else "the rollout"
            self.on_warning(
                f"MLflow did not take {self.background.pending()} journal write(s) within "
                f"{self.drain_seconds:g}s; the local journal holds every event. Send them with "
                f"`gray rollout sync {rollout}` once MLflow answers"
            )

    def _should_exit_on_hold(self) -> bool:
        state = self.state
        assert state is not None
        if state.phase is not Phase.WAITING_APPROVAL:
            return False
        return self.exit_on_hold or (
            state.until_stage is not None and state.stage >= state.until_stage
        )

    def _consumed_commands(self, state: RolloutState) -> list[str]:
        try:
            record = self.journal.load(state.rollout_id)
        except GrayError:
            return []
        return [str(e.data["command_id"]) for e in record.events if "command_id" in e.data]

    def _commands(self) -> RunResult | None:
        assert self.state is not None
        for command in self.journal.commands(self.state.rollout_id):
            if command.id in self._seen_commands:
                continue
            self._seen_commands.add(command.id)
            seen = loop.CommandReceived(
                self.clock.now(), command.command, command.actor, command.reason
            )
            step = loop.tick(self.plan, self.state, seen)
            # Tag the step's records with the command, so a resumed controller skips it.
            actions = tuple(
                loop.Record(a.event, a.reason, {**a.data, "command_id": command.id})
                if isinstance(a, loop.Record)
                else a
                for a in step.actions
            )
            result = self._apply(loop.Step(step.state, actions))
            if result is not None:
                return result
        return None

    def _look(self) -> loop.Look | loop.LeaseLost:
        assert self.state is not None
        now = self.clock.now()
        route: Applied | None
        expired = self._renew_lease()
        self._repair_replicas()
        try:
            route = self.router.read()
        except RouterError as exc:
            self.on_warning(f"could not read the route: {exc.message}")
            route = None
        if route is not None and loop.superseded(self.state, route):
            reason = expired or "the serving endpoint is held by a newer lease"
            return self._lease_lost(reason, route)
        try:
            snapshot = self.metrics.snapshot(loop.pair_of(self.state))
        except MetricsError as exc:
            return loop.Look(now, None, route, metrics_error=exc.message)
        return loop.Look(now, snapshot, route)

    # --- executing a step's actions -------------------------------------------

    def _apply(self, step: loop.Step) -> RunResult | None:
        self.state = step.state
        queue: deque[loop.Action] = deque(step.actions)
        while queue:
            action = queue.popleft()
            follow_up = self._execute(action)
            if isinstance(follow_up, RunResult):
                return follow_up
            if follow_up is not None:
                self.state = follow_up.state
                queue.extendleft(reversed(follow_up.actions))
        if self.state.phase.terminal:
            code = self.state.exit_code
            return RunResult(self.state, 0 if code is None else code, self.state.reason)
        return None

    def _execute(self, action: loop.Action) -> loop.Step | RunResult | None:
        assert self.state is not None
        state = self.state
        match action:
            case loop.Record() if state.phase.terminal:
                return self._record_end(state, action)
            case loop.Record():
                event = self.journal.append(state, action.event, action.reason, action.data)
                self.on_event(event)
                return None
            case loop.Notify():
                if self.notifier is not None:
                    for failure in self.notifier.send(action.event, action.text, state.rollout_id):
                        self.on_warning(failure)
                return None
            case loop.Stop():
                return RunResult(state, action.exit_code, action.reason)
            case loop.ApplyStage():
                return loop.tick(self.plan, state, self._apply_stage(action))
            case loop.Rollback():
                return loop.tick(self.plan, state, self._rollback())
            case loop.Promote():
                return loop.tick(self.plan, state, self._promote())
            case loop.CallHook():
                return self._call_hook(state, action)
        raise TypeError(f"unknown action {action!r}")

    def _call_hook(self, state: RolloutState, action: loop.CallHook) -> loop.Step | None:
        routed = state.stage > 0 or state.stage_started_at is not None
        if routed and not state.phase.terminal and action.hook != "pre_rollout":
            # The hook gets a whole lease time-to-live: the candidate's traffic in force
            # must not expire while the controller waits for the answer.
            self._renew_lease()
        body = hooks.payload(self.plan, state, action.hook, action.stage)
        answer = self.hooks.call(action.hook, body)
        seen = loop.HookAnswered(self.clock.now(), action, answer.ok, answer.reason, answer.status)
        if not state.phase.terminal:
            return loop.tick(self.plan, state, seen)
        # on_rollback: the rollout has ended; its answer is journaled and changes nothing.
        if not answer.ok:
            self.on_warning(answer.reason)
        record = loop.hook_record(seen)
        self.on_event(self.journal.append(state, record.event, record.reason, record.data))
        return None

    def _record_end(self, state: RolloutState, action: loop.Record) -> RunResult | None:
        """The first terminal event wins, across processes: when an operator's rollback
        ended the rollout first, this controller adopts that end instead of adding its own."""
        written, new = self.journal.append_terminal(state, action.event, action.reason, action.data)
        if new:
            self.on_event(written)
            return None
        ended = RolloutState.from_dict(written.state)
        self.state = ended
        # This controller's own account (it quotes the operator's reason) says what it saw.
        return RunResult(ended, ended.exit_code or 0, action.reason or ended.reason)

    def _lease(self) -> Lease:
        assert self.state is not None
        return Lease(self.state.rollout_id, self.state.epoch)

    def _lease_ttl(self) -> float | None:
        """The stage's lease time-to-live; None when its traffic is held with no expiry."""
        assert self.state is not None
        if self.hold_traffic or self.plan.stages[self.state.stage].hold:
            return None
        return lease_ttl(self.plan)

    def _renew_lease(self) -> str | None:
        """Every look renews the lease; the route read that follows shows who holds it.
        Returns why the lease is gone when it expired unrenewed."""
        ttl = self._lease_ttl()
        if ttl is None:
            return None
        try:
            self.router.renew(self._lease(), ttl)
        except LeaseExpiredError as exc:
            return exc.message
        except LeaseConflictError as exc:
            self.on_warning(exc.message)
        except RouterError as exc:
            self.on_warning(f"could not renew the lease: {exc.message}")
        return None

    def _repair_replicas(self) -> None:
        """A fleet's replica that lost the route (restarted with an older one, or empty) is
        rewritten before its counters are read. The runner journals each repair itself,
        like a moved alias: it is I/O done to keep the route the loop decided, and no
        decision of the loop depends on it."""
        if not isinstance(self.router, FleetRouter):
            return
        assert self.state is not None
        try:
            report = self.router.repair(self._lease(), self._lease_ttl())
        except RouterError as exc:
            self.on_warning(f"could not check the replicas' routes: {exc.message}")
            return
        for problem in report.problems:
            self.on_warning(problem)
        for repair in report.repaired:
            event = self.journal.append(
                self.state, EventKind.ROUTE_REPAIRED, repair.describe(), repair.to_dict()
            )
            self.on_event(event)

    def _write_and_verify(self, route: RouteSpec) -> Applied:
        lease = self._lease()
        self.router.apply(route, lease, ttl=self._lease_ttl())
        seen = self.router.read()
        if not seen.route.same_split(route) or seen.lease != lease:
            raise RouteVerificationError(
                f"the endpoint reports {seen.route.to_dict()} under {seen.lease} after gray wrote "
                f"{route.to_dict()} under {lease}"
            )
        return seen

    def _check_alias_drift(self) -> None:
        """Look (in the background when possible) whether a plan alias moved after the pins;
        the rollout keeps its versions, and the move is reported at the next step."""
        assert self.state is not None
        registry = self.registry
        if registry is None:
            return
        state = self.state

        def check() -> None:
            try:
                messages = registry.drift_from(self.plan.model, state.baseline, state.candidate)
            except RegistryError as exc:
                messages = [f"could not check the aliases: {exc.message}"]
            with self._drift_lock:
                self._drift_found.extend(messages)

        if self.background is not None:
            self.background.submit("check the plan's aliases", check)
        else:
            check()
            self._report_drift_found()

    def _report_drift_found(self) -> None:
        with self._drift_lock:
            found, self._drift_found = self._drift_found, []
        assert self.state is not None
        for message in found:
            if message in self._reported_drift:
                continue
            self._reported_drift.add(message)
            self.on_warning(message)
            if not message.startswith("could not check"):
                self.on_event(self.journal.append(self.state, EventKind.ALIAS_MOVED, message, {}))

    def _apply_stage(self, action: loop.ApplyStage) -> loop.Observation:
        self._check_alias_drift()
        try:
            applied = self._write_and_verify(action.route)
        except LeaseConflictError as exc:
            return self._lease_lost(exc.message)
        except RouterError as exc:
            return loop.EndpointLost(self.clock.now(), f"serving endpoint: {exc.message}")
        origin = self._origin_snapshot()
        if origin is None:
            return loop.EndpointLost(
                self.clock.now(), "metrics source did not answer after the route change"
            )
        return loop.StageRouted(self.clock.now(), applied, origin, action.fresh)

    def _origin_snapshot(self) -> Snapshot | None:
        assert self.state is not None
        for attempt in range(ORIGIN_SNAPSHOT_TRIES):
            try:
                return self.metrics.snapshot(loop.pair_of(self.state))
            except MetricsError as exc:
                self.on_warning(f"metrics source failed ({exc.message}); retrying")
                self.clock.sleep(min(2.0**attempt, 5.0))
        return None

    def _rollback(self) -> loop.Observation:
        assert self.state is not None
        state = self.state
        try:
            applied = self.router.rollback(self._lease())
        except LeaseConflictError as exc:
            return self._lease_lost(exc.message)
        except RouterError as exc:
            reason = f"ROLLBACK NOT APPLIED, serving endpoint failed: {exc.message}"
            return loop.EndpointLost(self.clock.now(), reason)
        registry = self.registry
        if registry is not None:
            # After the write, never before it: the registry is MLflow, which may hang.
            self._after_write(
                f"tag v{state.candidate} as rolled back",
                lambda: registry.mark_rolled_back(state.model, state.candidate, state.rollout_id),
            )
        return loop.RolledBack(self.clock.now(), applied)

    def _promote(self) -> loop.Observation:
        """Move the alias first (refused if it moved during the rollout: nothing changes),
        then make the candidate the endpoint's baseline. Both steps are idempotent."""
        assert self.state is not None
        state = self.state
        moves: list[dict[str, Any]] = []
        if self.plan.promote is not None and self.registry is not None:
            try:
                done = self.registry.promote(
                    state.model,
                    state.candidate,
                    self.plan.promote,
                    state.rollout_id,
                    expect_current=state.baseline,
                )
            except AliasConflictError as exc:
                if not self.registry.alias_points_at(
                    state.model, self.plan.promote.alias, state.candidate
                ):
                    return loop.EndpointLost(self.clock.now(), f"registry refused: {exc.message}")
                done = []  # a resumed promotion: the alias moved already, by us
            except RegistryError as exc:
                return loop.EndpointLost(self.clock.now(), f"registry: {exc.message}")
            moves = [m.to_dict() if hasattr(m, "to_dict") else dict(m) for m in done]
        try:
            self._write_and_verify(RouteSpec(baseline=state.candidate))
        except LeaseConflictError as exc:
            # An operator rolled back while we promoted: the endpoint serves the baseline,
            # so the aliases go back too, or the registry and the endpoint would disagree.
            return self._lease_lost(f"{exc.message}; {self._undo_moves(moves)}")
        except RouterError as exc:
            reason = f"serving endpoint: {exc.message}; {self._undo_moves(moves)}"
            return loop.EndpointLost(self.clock.now(), reason)
        return loop.Promoted(self.clock.now(), tuple(moves))

    def _undo_moves(self, moves: list[dict[str, Any]]) -> str:
        """Put back the aliases a refused promotion moved, newest first; what happened, said."""
        assert self.state is not None
        if not moves or self.registry is None:
            return "no alias had moved"
        undone: list[str] = []
        for move in reversed(moves):
            alias, before, after = move["alias"], move.get("from_version"), move["to_version"]
            if before is None:
                continue  # a new keep-previous alias names the version that still serves
            try:
                self.registry.set_alias(
                    self.state.model,
                    alias,
                    before,
                    expected_from=after,
                    rollout_id=self.state.rollout_id,
                    reason=f"rollout {self.state.rollout_id}: promotion refused by the endpoint",
                )
            except RegistryError as exc:
                return (
                    f"ALIASES NOT RESTORED: @{alias} still points at v{after}, not v{before} "
                    f"({exc.message}); fix with `gray rollback {self.state.model} --to previous`"
                )
            undone.append(f"@{alias} → v{before}")
        text = "aliases restored: " + (", ".join(undone) or "none needed")
        if undone:
            self.on_event(self.journal.append(self.state, EventKind.ALIASES_RESTORED, text, {}))
        return text

    def _lease_lost(self, reason: str, route: Applied | None = None) -> loop.LeaseLost:
        """Someone took the endpoint: say who and why when the local journal knows (an
        operator's `gray rollback` on this machine journals its reason before we look)."""
        assert self.state is not None
        applied = route if route is not None else self._read_or_none()
        rolled_back = applied is not None and applied.route.weight == 0 == applied.route.mirror
        ended = self._local_end()
        # An operator's rollback journals its reason a moment after its write: wait for it.
        for _ in range(OPERATOR_RECORD_POLLS if rolled_back else 0):
            if ended is not None:
                break
            self.clock.sleep(OPERATOR_RECORD_POLL_SECONDS)
            ended = self._local_end()
        if ended is not None and ended.reason:
            reason = f"{ended.reason} ({reason})"
        return loop.LeaseLost(self.clock.now(), applied, reason)

    def _local_end(self) -> RolloutState | None:
        assert self.state is not None
        try:
            record = self.journal.local.load(self.state.rollout_id)
        except (OSError, ValueError):
            return None
        if record is None or not record.state.phase.terminal:
            return None
        return record.state

    def _read_or_none(self) -> Applied | None:
        try:
            return self.router.read()
        except RouterError:
            return None
