"""Concurrent single-row requests to one version, predicted together (opt-in).

With `--batch-size N` above 1, the requests that queue for a version while it is busy
are taken together, up to N requests: each is read on its own, those a fast path read
(data typed exactly like the input example) are stacked and predicted in one call,
and the answer is split back by rows. Nothing waits for a batch to fill: a batch is
whatever queued while the previous one ran, so an idle gateway answers at once.
A batch whose prediction fails, or whose answer does not have one entry per row, is
predicted again request by request, so every failure stays with its own request.
Off by default: a model may answer a row differently in company (a float summed in
another order), which the gates would then count against it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from gray.gateway.inputs import ParsedRequest, to_jsonable
from gray.gateway.scoring import Computed, predict, read
from gray.gateway.stats import Outcome


@dataclass(frozen=True)
class _Job:
    body: bytes
    content_type: str | None
    future: Future[Computed]


class Batcher:
    """One per loaded version; its jobs run on the version's own worker thread."""

    def __init__(self, loaded: Any, max_requests: int) -> None:
        self._loaded = loaded
        self._max_requests = max_requests
        self._lock = threading.Lock()
        self._pending: deque[_Job] = deque()
        self._draining = False
        self.batched_requests = 0

    def submit(self, body: bytes, content_type: str | None) -> Future[Computed]:
        job = _Job(body, content_type, Future())
        with self._lock:
            self._pending.append(job)
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._loaded.pool.submit(self._drain)
            except RuntimeError:  # the version was unloaded meanwhile
                with self._lock:
                    self._draining = False
                raise
        return job.future

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
                jobs = [self._pending.popleft()]
                while self._pending and len(jobs) < self._max_requests:
                    jobs.append(self._pending.popleft())
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        reader, servable = self._loaded.reader, self._loaded.servable
        together: list[tuple[_Job, ParsedRequest, float]] = []
        for job in jobs:
            started = time.perf_counter()
            parsed = read(reader, job.body, job.content_type, started)
            if isinstance(parsed, Computed):
                job.future.set_result(parsed)
            elif parsed.like_example and reader.fast_predict is not None:
                together.append((job, parsed, started))
            else:
                job.future.set_result(predict(servable, reader, parsed, started))
        if len(together) == 1:
            job, parsed, started = together[0]
            job.future.set_result(predict(servable, reader, parsed, started))
        elif together and not self._predict_together(together):
            for job, parsed, started in together:
                job.future.set_result(predict(servable, reader, parsed, started))

    def _predict_together(self, together: list[tuple[_Job, ParsedRequest, float]]) -> bool:
        """One prediction for every request; False (nothing answered) when it cannot be split."""
        started = time.perf_counter()
        parts = [parsed.data for _, parsed, _ in together]
        sizes = [len(part) for part in parts]
        try:
            outputs = to_jsonable(self._loaded.reader.fast_predict(_stack(parts)))
        except Exception:
            return False
        if not isinstance(outputs, list) or len(outputs) != sum(sizes):
            return False
        seconds = time.perf_counter() - started
        offset = 0
        for (job, _, _), size in zip(together, sizes, strict=True):
            share = outputs[offset : offset + size]
            offset += size
            job.future.set_result(Computed(Outcome.OK, share, None, seconds))
        self.batched_requests += len(together)
        return True


def _stack(parts: list[Any]) -> Any:
    import numpy as np
    import pandas as pd

    if all(isinstance(part, pd.DataFrame) for part in parts):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)
