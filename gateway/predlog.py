"""The prediction log: one JSON line per answered request (and per mirrored pair).

Lines are queued by the request path and written by one background thread, so
a slow disk never slows a response; when the queue is full, lines are dropped
and counted. Files rotate by size: predictions.jsonl, predictions.jsonl.1, ...
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from gray.gateway.inputs import json_default

log = logging.getLogger("gray.gateway")

LOG_NAME = "predictions.jsonl"
_STOP = object()


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        backups: int,
        queue_size: int = 10_000,
        recent_size: int = 1_000,
    ) -> None:
        self.directory = directory
        self.path = directory / LOG_NAME
        self._max_bytes = max_bytes
        self._backups = backups
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=recent_size)
        self._recent_lock = threading.Lock()
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._flushed = threading.Event()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="gray-predlog", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record; never blocks."""
        with self._recent_lock:
            self._recent.append(record)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def recent(self, limit: int, kind: str | None = None, version: str | None = None) -> list[Any]:
        """The newest records still in memory, newest last."""
        with self._recent_lock:
            records = list(self._recent)
        if kind is not None:
            records = [r for r in records if r.get("kind") == kind]
        if version is not None:
            records = [r for r in records if _mentions(r, version)]
        return records[-limit:] if limit > 0 else []

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is on disk (for tests and shutdown)."""
        if self._thread is None:
            return
        self._flushed.clear()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._flushed.wait(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the thread's life
        size = self.path.stat().st_size
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                # Drain what is already queued so one flush covers many lines.
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = False
                for record in batch:
                    if record is _STOP:
                        stop = True
                    elif record is not None:
                        try:
                            line = json.dumps(record, default=json_default)
                        except (TypeError, ValueError) as error:
                            line = json.dumps({"unwritable_record": repr(error)})
                        handle.write(line + "\n")
                        size += len(line) + 1
                        if size >= self._max_bytes:
                            handle.close()
                            self._rotate()
                            handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                            size = 0
                handle.flush()
                if None in batch:
                    self._flushed.set()
                if stop:
                    return
        except Exception:
            log.exception("the prediction log stopped")
        finally:
            handle.close()

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{LOG_NAME}.{self._backups}")
        oldest.unlink(missing_ok=True)
        for number in range(self._backups - 1, 0, -1):
            source = self.path.with_name(f"{LOG_NAME}.{number}")
            if source.exists():
                source.replace(self.path.with_name(f"{LOG_NAME}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{LOG_NAME}.1"))


def _mentions(record: dict[str, Any], version: str) -> bool:
    if record.get("version") == version:
        return True
    return any(
        isinstance(side, dict) and side.get("version") == version
        for side in (record.get("baseline"), record.get("candidate"))
    )
