"""Notifications sent from a background thread, retried with backoff, never in the way.

`submit` only queues: a rollout's decision or rollback write never waits for a chat
service. A request that fails in a way that may pass (no connection, a timeout, a 5xx,
a 429) is tried again after a pause that doubles (a 429's `Retry-After` when longer),
up to `attempts` times; one the target refuses (any other 4xx) is not. What still
failed is kept for the caller to report, from its own thread. `close(wait)` gives the
queue at most `wait` seconds at the end of a command, then says what it left unsent.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass

import httpx

from gray.controller.notify.senders import Outgoing
from gray.controller.redact import redact

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_ATTEMPTS = 5
DEFAULT_FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 30.0


@dataclass(frozen=True)
class _Try:
    outgoing: Outgoing
    attempt: int  # 1-based
    pause: float  # before the next attempt, if this one fails


class Delivery:
    """One worker thread, started on the first message."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        attempts: int = DEFAULT_ATTEMPTS,
        first_pause: float = DEFAULT_FIRST_PAUSE_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._attempts = attempts
        self._first_pause = first_pause
        self._transport = transport
        self._due: list[tuple[float, int, _Try]] = []  # a heap by due time
        self._order = itertools.count()
        self._busy = 0  # tries taken off the heap and not finished
        self._failures: list[str] = []
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, outgoing: Outgoing) -> None:
        with self._lock:
            if self._closed:
                self._failures.append(f"{outgoing.label} not sent: the command was ending")
                return
            self._push(time.monotonic(), _Try(outgoing, 1, self._first_pause))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="gray-notify", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def take_failures(self) -> list[str]:
        """The messages given up on since the last call, one line each."""
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def pending(self) -> int:
        with self._lock:
            return len(self._due) + self._busy

    def close(self, wait: float) -> list[str]:
        """Wait up to `wait` seconds for every message (retries included) to be sent or
        given up; then the failures, and a line for each message left unsent."""
        deadline = time.monotonic() + wait
        with self._lock:
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(min(left, 0.05))
            self._closed = True
            unsent = [entry[2].outgoing for entry in self._due]
            in_flight = self._busy
            self._due.clear()
            self._lock.notify_all()
        lines = self.take_failures()
        lines += [f"{o.label} not sent within {wait:g}s: gray is exiting" for o in unsent]
        if in_flight:
            lines.append(f"{in_flight} notification(s) still unanswered after {wait:g}s")
        return lines

    # --- the worker ---------------------------------------------------------------------

    def _push(self, due: float, attempt: _Try) -> None:
        heapq.heappush(self._due, (due, next(self._order), attempt))

    def _work(self) -> None:
        with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
            while True:
                attempt = self._next()
                if attempt is None:
                    return
                retry_after = self._send(client, attempt)
                with self._lock:
                    self._busy -= 1
                    if retry_after is not None:
                        pause = min(max(attempt.pause, retry_after), MAX_PAUSE_SECONDS)
                        again = _Try(attempt.outgoing, attempt.attempt + 1, attempt.pause * 2)
                        self._push(time.monotonic() + pause, again)
                    self._lock.notify_all()

    def _next(self) -> _Try | None:
        """The next try once it is due (None once closed)."""
        with self._lock:
            while True:
                if self._closed:
                    return None
                if self._due:
                    due, _, attempt = self._due[0]
                    left = due - time.monotonic()
                    if left <= 0:
                        heapq.heappop(self._due)
                        self._busy += 1
                        return attempt
                    self._lock.wait(left)
                else:
                    self._lock.wait()

    def _send(self, client: httpx.Client, attempt: _Try) -> float | None:
        """One POST; the pause before trying again, or None when done (sent or given up)."""
        outgoing = attempt.outgoing
        headers = {"User-Agent": "gray", **outgoing.headers}
        try:
            response = client.post(outgoing.url, json=outgoing.body, headers=headers)
        except httpx.InvalidURL as error:
            return self._give_up(attempt, f"failed: {error}", retryable=False)
        except httpx.HTTPError as error:
            reason = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
            return self._give_up(attempt, f"{reason}: {error or type(error).__name__}")
        status = response.status_code
        if 200 <= status < 300:
            return None
        retryable = status >= 500 or status == 429
        return self._give_up(
            attempt, f"answered {status}", retryable=retryable, retry_after=_retry_after(response)
        )

    def _give_up(
        self, attempt: _Try, reason: str, *, retryable: bool = True, retry_after: float = 0.0
    ) -> float | None:
        if retryable and attempt.attempt < self._attempts:
            return retry_after
        tries = f" after {attempt.attempt} attempts" if attempt.attempt > 1 else ""
        with self._lock:
            self._failures.append(redact(f"{attempt.outgoing.label} {reason}{tries}"))
        return None


def _retry_after(response: httpx.Response) -> float:
    """A 429's or 503's `Retry-After` in seconds (0 when absent or a date)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
