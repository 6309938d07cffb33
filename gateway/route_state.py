"""The route in force, fenced by lease epochs and kept on disk across restarts."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from gray.controller.errors import GatewayError
from gray.controller.types import Applied, Lease, RouteSpec
from gray.gateway.routing import CompiledRoute

ROLLBACK_ROLLOUT_ID = "rollback"


class LeaseRefused(Exception):
    """A write carried an older epoch, or the same epoch under another rollout id."""

    def __init__(self, message: str, current: Lease | None) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


def check_lease(current: Lease | None, offered: Lease) -> None:
    if current is None:
        return
    if offered.epoch < current.epoch:
        raise LeaseRefused(
            f"epoch {offered.epoch} is older than epoch {current.epoch} held by "
            f"rollout {current.rollout_id!r}",
            current,
        )
    if offered.epoch == current.epoch and offered.rollout_id != current.rollout_id:
        raise LeaseRefused(
            f"epoch {offered.epoch} is held by rollout {current.rollout_id!r}, "
            f"not {offered.rollout_id!r}; take over with a higher epoch",
            current,
        )


class RouteStore:
    """Holds the route and lease; every change is written to disk before it takes effect."""

    def __init__(self, path: Path, model_name: str, initial: Applied) -> None:
        self._path = path
        self._model_name = model_name
        self._lock = threading.Lock()
        self._applied = initial
        self._compiled = CompiledRoute.compile(initial.route)

    @classmethod
    def restore(cls, path: Path, model_name: str) -> RouteStore | None:
        """The store saved at `path`, or None when no route was ever written there."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            applied = Applied.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GatewayError(f"cannot read the saved route {path}: {error}") from None
        saved_model = data.get("model")
        if saved_model != model_name:
            raise GatewayError(
                f"the saved route {path} belongs to model {saved_model!r}, not {model_name!r}; "
                "use another --state-dir"
            )
        return cls(path, model_name, applied)

    @property
    def applied(self) -> Applied:
        return self._applied

    @property
    def compiled(self) -> CompiledRoute:
        return self._compiled

    def put(self, route: RouteSpec, lease: Lease) -> Applied:
        """Put `route` in force under `lease`; raises LeaseRefused."""
        with self._lock:
            check_lease(self._applied.lease, lease)
            return self._commit(Applied(route=route, lease=lease))

    def check(self, lease: Lease) -> None:
        with self._lock:
            check_lease(self._applied.lease, lease)

    def rollback(self, lease: Lease | None) -> Applied:
        """Baseline answers everything, under an epoch above every epoch seen so far."""
        with self._lock:
            current = self._applied.lease
            epoch = max(current.epoch if current else 0, lease.epoch if lease else 0) + 1
            if lease is not None:
                rollout_id = lease.rollout_id
            else:
                rollout_id = current.rollout_id if current else ROLLBACK_ROLLOUT_ID
            rolled = Applied(
                route=self._applied.route.rolled_back(),
                lease=Lease(rollout_id=rollout_id, epoch=epoch),
            )
            return self._commit(rolled)

    def _commit(self, applied: Applied) -> Applied:
        compiled = CompiledRoute.compile(applied.route)
        self._write(applied)
        # Swap only after the file is durable, so a crash never leaves memory ahead of disk.
        self._applied = applied
        self._compiled = compiled
        return applied

    def _write(self, applied: Applied) -> None:
        payload = {"model": self._model_name, "written_at": time.time(), **applied.to_dict()}
        write_atomically(self._path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
