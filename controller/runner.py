"""The thin runner around the pure loop: it sleeps, does the I/O, and feeds back what it saw."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gray.controller import loop
from gray.controller.errors import (
    AliasConflictError,
    GrayError,
    LeaseConflictError,
    MetricsError,
    RegistryError,
    RouterError,
    RouteVerificationError,
)
from gray.controller.journal import Event, Journal
from gray.controller.metrics.base import MetricsSource
from gray.controller.notify import Notifier
from gray.controller.plan import Plan
from gray.controller.routers.base import Router
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied, Lease, RouteSpec, Snapshot

# Commands are polled this often while waiting between looks, so an approval or an
# abort takes effect within about a second whatever the plan's interval.
COMMAND_POLL_SECONDS = 1.0
ORIGIN_SNAPSHOT_TRIES = 3


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Promoter(Protocol):
    """The registry operations a rollout ends with."""

    def promote(
        self, name: str, candidate_version: str, promote: Any, rollout_id: str
    ) -> list[Any]: ...
    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None: ...


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
    ) -> None:
        self.plan = plan
        self.router = router
        self.metrics = metrics
        self.registry = registry
        self.journal = journal
        self.notifier = notifier
        self.clock = clock or SystemClock()
        self.on_event = on_event or (lambda event: None)
        self.on_warning = on_warning or (lambda text: None)
        self.exit_on_hold = exit_on_hold
        self.state: RolloutState | None = None
        self._seen_commands: set[str] = set()
        self._reported_drift: set[str] = set()

    # --- the outer loop -------------------------------------------------------

    def run(self, step: loop.Step) -> RunResult:
        self._seen_commands = set(self._consumed_commands(step.state))
        result = self._apply(step)
        last_look = self.clock.now()
        while result is None:
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

    def _look(self) -> loop.Look:
        assert self.state is not None
        now = self.clock.now()
        route: Applied | None
        try:
            route = self.router.read()
        except RouterError as exc:
            self.on_warning(f"could not read the route: {exc.message}")
            route = None
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
        raise TypeError(f"unknown action {action!r}")

    def _lease(self) -> Lease:
        assert self.state is not None
        return Lease(self.state.rollout_id, self.state.epoch)

    def _write_and_verify(self, route: RouteSpec) -> Applied:
        lease = self._lease()
        self.router.apply(route, lease)
        seen = self.router.read()
        if not seen.route.same_split(route) or seen.lease != lease:
            raise RouteVerificationError(
                f"the endpoint reports {seen.route.to_dict()} under {seen.lease} after gray wrote "
                f"{route.to_dict()} under {lease}"
            )
        return seen

    def _report_alias_drift(self) -> None:
        """Say so when a plan alias moved after the pins: the rollout keeps its versions."""
        assert self.state is not None
        if self.registry is None:
            return
        try:
            messages = self.registry.drift_from(
                self.plan.model, self.state.baseline, self.state.candidate
            )
        except RegistryError as exc:
            self.on_warning(f"could not check the aliases: {exc.message}")
            return
        for message in messages:
            if message not in self._reported_drift:
                self._reported_drift.add(message)
                self.on_warning(message)
                self.on_event(self.journal.append(self.state, "alias_moved", message, {}))

    def _apply_stage(self, action: loop.ApplyStage) -> loop.Observation:
        self._report_alias_drift()
        try:
            applied = self._write_and_verify(action.route)
        except LeaseConflictError as exc:
            return loop.LeaseLost(self.clock.now(), self._read_or_none(), exc.message)
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
            return loop.LeaseLost(self.clock.now(), self._read_or_none(), exc.message)
        except RouterError as exc:
            reason = f"ROLLBACK NOT APPLIED, serving endpoint failed: {exc.message}"
            return loop.EndpointLost(self.clock.now(), reason)
        if self.registry is not None:
            try:
                self.registry.mark_rolled_back(state.model, state.candidate, state.rollout_id)
            except RegistryError as exc:
                self.on_warning(f"traffic rolled back, but the registry tag failed: {exc.message}")
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
            return loop.LeaseLost(self.clock.now(), self._read_or_none(), exc.message)
        except RouterError as exc:
            return loop.EndpointLost(self.clock.now(), f"serving endpoint: {exc.message}")
        return loop.Promoted(self.clock.now(), tuple(moves))

    def _read_or_none(self) -> Applied | None:
        try:
            return self.router.read()
        except RouterError:
            return None
