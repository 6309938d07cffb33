"""MLflow work off the controller's path: the shared journal written by a background thread.

A controller must never wait for MLflow between a decision and the write that
acts on it: a hung tracking server (each call can block for its whole HTTP
timeout) would delay a rollback by tens of seconds. `BackgroundRemote` wraps the
shared journal so that appending an event only queues it, and reading commands
answers at once with the newest list a background refresh fetched. The local
journal, fsynced before every action, is the record until the queue drains.
Chores (a registry tag after a rollback) ride the same queue, in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from gray.controller.journal.events import Command, Event, RemoteJournal, RolloutRecord
from gray.controller.state import RolloutState

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 15.0
# A dead MLflow fails every call at once: say so at most this often, not every second.
REPORT_EVERY_SECONDS = 30.0


class BackgroundRemote:
    """A RemoteJournal whose `append` and `commands` never block the caller.

    `create`, `load`, `list_states` and `post_command` stay synchronous: they run
    before a rollout moves traffic, or in commands whose answer is the MLflow call.
    """

    def __init__(
        self,
        remote: RemoteJournal,
        on_error: Callable[[str], None] | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.remote = remote
        self.on_error = on_error or (lambda text: None)
        self._sleep = sleep
        self._work: deque[tuple[str, Callable[[], None]]] = deque()
        self._commands: dict[str, list[Command]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Condition()
        self._busy = False
        self._closed = False
        self._last_report = float("-inf")
        self._thread = threading.Thread(target=self._serve, name="gray-mlflow", daemon=True)
        self._thread.start()

    # --- RemoteJournal ------------------------------------------------------------

    def create(self, state: RolloutState, plan_text: str) -> None:
        self.remote.create(state, plan_text)

    def append(self, event: Event) -> None:
        self.submit(f"journal event {event.seq} ({event.event})", lambda: self.remote.append(event))

    def load(self, rollout_id: str) -> RolloutRecord | None:
        return self.remote.load(rollout_id)

    def list_states(self, model: str | None) -> list[RolloutState]:
        return self.remote.list_states(model)

    def post_command(self, rollout_id: str, command: Command) -> None:
        self.remote.post_command(rollout_id, command)

    def commands(self, rollout_id: str) -> list[Command]:
        """The commands seen at the last refresh; asks for a new one if none is in flight."""
        with self._lock:
            known = list(self._commands.get(rollout_id, []))
            if rollout_id in self._refreshing:
                return known
            self._refreshing.add(rollout_id)

        def refresh() -> None:
            try:
                found = self.remote.commands(rollout_id)
            finally:
                with self._lock:
                    self._refreshing.discard(rollout_id)
            with self._lock:
                self._commands[rollout_id] = list(found)

        self._enqueue(f"read commands of {rollout_id}", refresh, retry=False)
        return known

    # --- chores -------------------------------------------------------------------

    def submit(self, what: str, chore: Callable[[], None]) -> None:
        """Run `chore` in the background after everything queued before it; a failure is
        reported and retried with backoff, so the order of writes holds."""
        self._enqueue(what, chore, retry=True)

    def pending(self) -> int:
        with self._lock:
            return len(self._work) + (1 if self._busy else 0)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queue to empty; True when it did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._work or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def close(self, timeout: float) -> bool:
        """Drain for up to `timeout` seconds, then stop the thread; True when nothing was left."""
        done = self.drain(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        return done

    # --- the worker ---------------------------------------------------------------

    def _enqueue(self, what: str, chore: Callable[[], None], *, retry: bool) -> None:
        def attempt() -> None:
            delay = RETRY_FIRST_SECONDS
            while True:
                try:
                    chore()
                    return
                except Exception as exc:  # MLflow down or hung: say so, keep the order
                    self._report(f"MLflow: {what} failed, will retry: {exc}")
                    if not retry or self._is_closed():
                        return
                    self._sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)

        with self._lock:
            self._work.append((what, attempt))
            self._lock.notify_all()

    def _report(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_report >= REPORT_EVERY_SECONDS:
            self._last_report = now
            self.on_error(text)

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._work and not self._closed:
                    self._lock.wait()
                if not self._work:
                    return
                _, job = self._work.popleft()
                self._busy = True
            try:
                job()
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()
