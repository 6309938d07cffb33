"""A steady stream of prediction requests, with the true labels posted back later.

It replays the demo data set against a gateway from many user ids, as a real
client would, and sends each request's label to `/feedback` after a delay, the
way labels arrive in production (a chargeback confirms fraud days later).
"""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class TrafficCounts:
    """What the generator saw, per answering version."""

    sent: int = 0
    by_version: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    labels_sent: int = 0
    failures: int = 0  # requests that got no HTTP answer at all


class TrafficGenerator:
    def __init__(
        self,
        url: str,
        token: str | None,
        features: Any,
        labels: Any,
        *,
        rps: float = 60.0,
        workers: int = 4,
        users: int = 5000,
        label_delay: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.columns = [str(c) for c in features.columns]
        self.rows = features.to_numpy().tolist()
        self.labels = [int(v) for v in labels.tolist()]
        self.rps = rps
        self.workers = workers
        self.users = users
        self.label_delay = label_delay
        self.counts = TrafficCounts()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pending: collections.deque[tuple[float, str, int]] = collections.deque()
        self._threads: list[threading.Thread] = []

    def start(self) -> TrafficGenerator:
        for index in range(self.workers):
            thread = threading.Thread(target=self._send_loop, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        feedback = threading.Thread(target=self._feedback_loop, daemon=True)
        feedback.start()
        self._threads.append(feedback)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> TrafficGenerator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _pick(self) -> tuple[int, str]:
        with self._lock:
            return self._random.randrange(
                len(self.rows)
            ), f"user-{self._random.randrange(self.users)}"

    def _send_loop(self, worker: int) -> None:
        period = self.workers / self.rps
        next_at = time.monotonic() + worker * period / self.workers
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                next_at = max(next_at + period, time.monotonic() - period)
                index, user = self._pick()
                body = {"dataframe_split": {"columns": self.columns, "data": [self.rows[index]]}}
                try:
                    response = client.post(
                        f"{self.url}/invocations", json=body, headers={"X-User-Id": user}
                    )
                except httpx.HTTPError:
                    with self._lock:
                        self.counts.failures += 1
                    continue
                version = response.headers.get("X-Model-Version", "?")
                with self._lock:
                    self.counts.sent += 1
                    self.counts.by_version[version] += 1
                    if response.status_code >= 500:
                        self.counts.errors[version] += 1
                request_id = response.headers.get("X-Request-Id")
                if response.status_code == 200 and request_id:
                    due = time.monotonic() + self.label_delay
                    self._pending.append((due, request_id, self.labels[index]))

    def _feedback_loop(self) -> None:
        with httpx.Client(timeout=10.0, headers=self.headers) as client:
            while not self._stop.is_set():
                batch = []
                now = time.monotonic()
                while self._pending and self._pending[0][0] <= now and len(batch) < 200:
                    _, request_id, label = self._pending.popleft()
                    batch.append({"request_id": request_id, "label": [label]})
                if batch:
                    try:
                        client.post(f"{self.url}/feedback", json={"labels": batch})
                        with self._lock:
                            self.counts.labels_sent += len(batch)
                    except httpx.HTTPError:
                        pass  # labels are best effort, as in production
                self._stop.wait(0.2)
