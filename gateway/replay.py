"""A candidate's failed requests, replayed on the baseline after the answer went out.

A failure that the same input also causes on the baseline is not evidence against
the candidate: such inputs are what a client sends, not what the candidate broke.
Each live request the candidate fails (5xx) is run again on the baseline in one
background thread; the counts say how many were replayed and how many the baseline
failed too. The sample is bounded: at most `limit` replays wait or run at once,
the rest are skipped and counted, so replays never pile up behind a broken
candidate and never hold up an answer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gray.gateway.stats import Outcome

log = logging.getLogger("gray.gateway")

DEFAULT_LIMIT = 2


@dataclass
class ReplayCounts:
    """Per candidate version: failures replayed on the baseline, and how many failed there."""

    replayed_failures: int = 0
    baseline_also_failed: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "replayed_failures": self.replayed_failures,
            "baseline_also_failed": self.baseline_also_failed,
            "replays_skipped": self.skipped,
        }


class FailureReplays:
    """Runs replays one at a time in their own thread, never in a version's request queue."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gray-replay")
        self._lock = threading.Lock()
        self._pending = 0
        self._counts: dict[str, ReplayCounts] = {}

    def offer(self, candidate: str, run_on_baseline: Callable[[], Any]) -> bool:
        """Replay one failure of `candidate`; False when the bound skipped it.

        `run_on_baseline` computes the same request on the baseline and returns its
        `Computed`.
        """
        with self._lock:
            counts = self._counts.setdefault(candidate, ReplayCounts())
            if self._pending >= self._limit:
                counts.skipped += 1
                return False
            self._pending += 1
        try:
            future = self._executor.submit(run_on_baseline)
        except RuntimeError:  # shutting down
            with self._lock:
                self._pending -= 1
                counts.skipped += 1
            return False
        future.add_done_callback(lambda done: self._finished(candidate, done))
        return True

    def _finished(self, candidate: str, done: Future[Any]) -> None:
        failed: bool | None = None
        with contextlib.suppress(Exception):
            failed = done.result().outcome != Outcome.OK
        with self._lock:
            self._pending -= 1
            counts = self._counts.setdefault(candidate, ReplayCounts())
            if failed is None:
                counts.skipped += 1
                return
            counts.replayed_failures += 1
            counts.baseline_also_failed += int(failed)

    def counts(self, version: str) -> ReplayCounts:
        with self._lock:
            found = self._counts.get(version)
            return ReplayCounts(**vars(found)) if found is not None else ReplayCounts()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
