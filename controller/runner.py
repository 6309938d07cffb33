"""The thin runner around the pure loop: it sleeps, does the I/O, and feeds back what it saw."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gray.controller import hooks, loop
from gray.controller.alias_drift import AliasDrift
from gray.controller.clock import Clock, SystemClock
from gray.controller.endpoint_actions import EndpointActions, Promoter
from gray.controller.errors import (
    GrayError,
    MetricsError,
    RouterError,
)
from gray.controller.journal import Event, Journal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.metrics.base import MetricsSource
from gray.controller.notify import Notifier
from gray.controller.plan.models import Plan
from gray.controller.routers.base import Router
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied

# Commands are polled this often while waiting between looks, so an approval or an
# abort takes effect within about a second whatever the plan's interval.
COMMAND_POLL_SECONDS = 1.0
# How long a finished controller waits for MLflow to take the journal's last events.
MLFLOW_DRAIN_SECONDS = 10.0


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
        # MLflow work runs on the journal's background thread when there is one, so a hung
        # tracking server never sits between a decision and the endpoint write.
        remote = journal.remote
        self.background = remote if isinstance(remote, BackgroundRemote) else None
        self._deferred: list[tuple[str, Callable[[], None]]] = []
        self.endpoint = EndpointActions(
            plan,
            router,
            metrics,
            registry,
            journal,
            self.clock,
            on_event=self._report_event,
            on_warning=self._report_warning,
            after_write=self._after_write,
            hold_traffic=hold_traffic,
        )
        self.drift = AliasDrift(
            plan.model, registry, journal, self.background, self._report_event, self._report_warning
        )

    # The collaborators report through these, which read the callbacks at call time, so a
    # caller may set `on_event` / `on_warning` after building the runner.
    def _report_event(self, event: Event) -> None:
        self.on_event(event)

    def _report_warning(self, text: str) -> None:
        self.on_warning(text)

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
            assert self.state is not None
            self._report_notify_failures()
            self.drift.report(self.state)
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

    def _report_notify_failures(self) -> None:
        if self.notifier is not None:
            for failure in self.notifier.take_failures():
                self.on_warning(failure)

    def _finish(self) -> None:
        if self.notifier is not None:  # a bounded wait for what is still being sent
            for failure in self.notifier.close():
                self.on_warning(failure)
        for what, chore in self._deferred:
            try:
                chore()
            except GrayError as exc:
                self.on_warning(f"{what} failed: {exc.message}")
        self._deferred.clear()
        if self.background is None:
            return
        if self.state is not None and self.state.phase.terminal:
            from gray.controller.report.artifact import submit_report

            ended = self.state.rollout_id
            submit_report(self.background, self.journal, self.plan, ended, self.on_warning)
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
        expired = self.endpoint.renew_lease(self.state)
        self.endpoint.repair_replicas(self.state)
        try:
            route = self.router.read()
        except RouterError as exc:
            self.on_warning(f"could not read the route: {exc.message}")
            route = None
        if route is not None and loop.superseded(self.state, route):
            reason = expired or "the serving endpoint is held by a newer lease"
            return self.endpoint.lease_lost(self.state, reason, route)
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
                if self.notifier is not None:  # queued: sent in the background
                    self.notifier.send(action.event, action.text, self.plan, state)
                return None
            case loop.Stop():
                return RunResult(state, action.exit_code, action.reason)
            case loop.ApplyStage():
                self.drift.check(state)
                return loop.tick(self.plan, state, self.endpoint.apply_stage(state, action))
            case loop.Rollback():
                return loop.tick(self.plan, state, self.endpoint.rollback(state))
            case loop.Promote():
                return loop.tick(self.plan, state, self.endpoint.promote(state))
            case loop.CallHook():
                return self._call_hook(state, action)
        raise TypeError(f"unknown action {action!r}")

    def _call_hook(self, state: RolloutState, action: loop.CallHook) -> loop.Step | None:
        routed = state.stage > 0 or state.stage_started_at is not None
        if routed and not state.phase.terminal and action.hook != "pre_rollout":
            # The hook gets a whole lease time-to-live: the candidate's traffic in force
            # must not expire while the controller waits for the answer.
            self.endpoint.renew_lease(state)
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
