"""The watch loop: look at the plan's candidate alias at an interval, or at once when a
webhook nudges, and start a rollout when `decision.decide` says so.

A rollout is started through the ordinary start path (`detached.start_controller`: the
same `gray rollout start PLAN` a person runs, in its own session), so the controller,
its preflight (which again refuses a second rollout of the model) and its journal are
the ones every other rollout has; the watcher only decides when. A start the preflight
refused is tried again for the same version after a backoff that doubles from the
interval up to an hour: an endpoint that was down comes back, a wrong binding gets fixed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gray.controller.errors import ConfigError, GrayError
from gray.controller.watch.decision import Action, Decision, decide

if TYPE_CHECKING:
    from gray.controller.journal import Journal
    from gray.controller.plan.models import Plan
    from gray.controller.registry import Registry

MAX_BACKOFF_SECONDS = 3600.0

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Started:
    rollout_id: str
    detail: str  # where to follow it


Starter = Callable[[Decision], Started]


def controller_starter(plan_path: Path, model: str, registry_uri: str | None) -> Starter:
    """Start `gray rollout start PLAN` in the background, as `--detach` does; returns once
    its rollout is journaled, raises RolloutError when its preflight refused."""
    from gray.controller import detached
    from gray.controller.journal import new_rollout_id

    def start(decision: Decision) -> Started:
        rollout_id = new_rollout_id(model)
        controller = detached.start_controller(
            plan_path, rollout_id, until_stage=None, registry_uri=registry_uri, hold_traffic=False
        )
        return Started(rollout_id, f"controller pid {controller.pid}, log {controller.log}")

    return start


def candidate_alias(plan: Plan) -> str:
    """The alias a watcher follows; a plan whose candidate is a fixed version has none."""
    ref = plan.model.candidate
    if not ref.startswith("@"):
        raise ConfigError(
            f"gray watch follows the plan's candidate alias, but model.candidate is {ref!r}, "
            'a fixed version; write it as an alias, e.g. candidate: "@challenger"'
        )
    return ref


class Watcher:
    def __init__(
        self,
        plan: Plan,
        registry: Registry,
        journal: Journal,
        start: Starter,
        emit: Emit,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.clock = clock  # for the backoff and the health endpoint
        self.candidate_ref = candidate_alias(plan)
        self.registry = registry
        self.journal = journal
        self.start = start
        self.emit = emit
        self.interval = interval
        self.last: Decision | None = None
        self.last_check_at: float | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._nudges: list[str] = []
        self._lock = threading.Lock()
        self._refused: dict[str, tuple[int, float]] = {}  # version -> (refusals, retry at)

    # -- one look -------------------------------------------------------------------------

    def check(self, trigger: str) -> Decision:
        """Read the registry and the journals, decide, and start a rollout when due.
        Raises GrayError when the registry or the journal cannot be read."""
        model = self.plan.model
        baseline = self.registry.resolve(model.name, model.baseline)
        candidate = self.registry.resolve(model.name, self.candidate_ref)
        decision = decide(
            self.candidate_ref, baseline, candidate, self.journal.list_states(model.name)
        )
        decision = self._after_refusals(decision, self.clock())
        self.last_check_at = self.clock()
        if trigger != "poll" or decision != self.last:
            self.emit({"event": "decision", "trigger": trigger, **decision.to_dict()})
        self.last = decision
        if decision.action is Action.START:
            self._start(decision)
        return decision

    def _after_refusals(self, decision: Decision, now: float) -> Decision:
        refused = self._refused.get(decision.version or "")
        if decision.action is not Action.START or refused is None or now >= refused[1]:
            return decision
        # The time, not a countdown: the same decision reads the same until it changes.
        again = time.strftime("%H:%M:%S", time.localtime(refused[1]))
        return Decision(
            Action.WAIT,
            decision.version,
            f"the last start of v{decision.version} was refused by its preflight; tried again "
            f"from {again}",
        )

    def _start(self, decision: Decision) -> None:
        version = decision.version or ""
        try:
            started = self.start(decision)
        except (GrayError, OSError) as exc:  # refused by its preflight, or not even started
            reason = exc.message if isinstance(exc, GrayError) else f"cannot start it: {exc}"
            count = self._refused.get(version, (0, 0.0))[0] + 1
            delay = min(self.interval * 2 ** (count - 1), MAX_BACKOFF_SECONDS)
            self._refused[version] = (count, self.clock() + delay)
            self.emit(
                {
                    "event": "start_refused",
                    "version": version,
                    "retry_in_seconds": delay,
                    "reason": reason,
                }
            )
            return
        self._refused.pop(version, None)
        self.emit(
            {
                "event": "started",
                "version": version,
                "rollout_id": started.rollout_id,
                "reason": f"started {started.rollout_id} for v{version}; {started.detail}",
            }
        )

    # -- the loop -------------------------------------------------------------------------

    def nudge(self, why: str) -> None:
        """Look again now (a webhook said the alias moved)."""
        with self._lock:
            self._nudges.append(why)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Look at every interval and at every nudge until `stop`; a registry or journal
        that does not answer is reported (once while it stays the same) and tried again at
        the next look."""
        trigger = "start"
        last_error: dict[str, Any] | None = None
        while not self._stopping.is_set():
            try:
                self.check(trigger)
                last_error = None
            except GrayError as exc:
                error = {"event": "error", "error": type(exc).__name__, "reason": exc.message}
                if error != last_error or trigger != "poll":
                    self.emit(error)
                last_error = error
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                nudges, self._nudges = self._nudges, []
            trigger = "webhook" if nudges else "poll"

    def status(self) -> dict[str, Any]:
        """What the watcher last saw, for its health endpoint."""
        return {
            "model": self.plan.model.name,
            "alias": self.candidate_ref,
            "last_check_at": self.last_check_at,
            "last_decision": self.last.to_dict() if self.last else None,
        }
