"""Model versions: loaded and warmed in a worker thread, dropped completely on unload.

A version takes traffic only once it is READY, which means it loaded and answered
its own input example. Loads run one at a time so two large models never sit
half-built in memory together.

Each ready version remembers the sha256 of the preprocessor it applies. The
registry's tag is read again now and then (`revalidate`): when it no longer
matches, the version stops taking traffic at once and is loaded again, so a
binding made or changed after the load is never silently ignored.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from gray.controller.errors import GatewayError, GrayError
from gray.gateway.inputs import JSON_TYPE, RequestReader, fast_contract
from gray.gateway.scoring import compute, unchecked_predictor
from gray.gateway.stats import Outcome

log = logging.getLogger("gray.gateway")

LOADING = "loading"
READY = "ready"
FAILED = "failed"

# Failed loads are kept so their reason can be read, but not for ever: only the newest.
FAILED_KEPT = 16


class Servable(Protocol):
    """What the gateway needs of a loaded version (a ServingBundle, serving_bundle.py, fits)."""

    input_example: Any

    def predict(self, frame: Any) -> Any: ...


def applied_preprocessor(servable: Servable) -> str | None:
    """The sha256 of the preprocessor a loaded version applies (None: it applies none)."""
    value = getattr(servable, "preprocessor_sha256", None)
    return value if isinstance(value, str) else None


class VersionLoader(Protocol):
    """Where versions come from: the MLflow registry in production, a dict in unit tests."""

    def load(self, version: str) -> Servable: ...

    def resolve(self, reference: str) -> str:
        """`"@alias"` or a version number to a version number."""
        ...

    def preprocessor_sha256(self, version: str) -> str | None:
        """The preprocessor hash the registry records for `version` now (None: no tag)."""
        ...


@dataclass(frozen=True)
class LoadedVersion:
    """A ready version with its own worker threads, so a slow version queues only itself."""

    version: str
    servable: Servable
    reader: RequestReader
    load_seconds: float
    warmup_seconds: float | None  # None: no input example to warm up with
    pool: ThreadPoolExecutor
    preprocessor_sha256: str | None = None


@dataclass
class _Entry:
    state: str
    generation: int
    started_at: float
    loaded: LoadedVersion | None = None
    reason: str | None = None
    finished_at: float | None = None


class ModelManager:
    """Owns every loaded version; the request path only calls `ready`."""

    def __init__(
        self, loader: VersionLoader, warmup_rounds: int = 3, threads_per_version: int = 1
    ) -> None:
        self._loader = loader
        self._warmup_rounds = warmup_rounds
        self._threads_per_version = threads_per_version
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gray-load")
        self._changed = threading.Condition(self._lock)

    def ready(self, version: str) -> LoadedVersion | None:
        entry = self._entries.get(version)
        return entry.loaded if entry is not None and entry.state == READY else None

    def state(self, version: str) -> str | None:
        entry = self._entries.get(version)
        return entry.state if entry is not None else None

    def states(self) -> dict[str, str]:
        with self._lock:
            return {version: entry.state for version, entry in sorted(self._entries.items())}

    def describe(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                version: {
                    "state": entry.state,
                    "reason": entry.reason,
                    "load_seconds": entry.loaded.load_seconds if entry.loaded else None,
                    "warmup_seconds": entry.loaded.warmup_seconds if entry.loaded else None,
                    "preprocessor_sha256": (
                        entry.loaded.preprocessor_sha256 if entry.loaded else None
                    ),
                }
                for version, entry in sorted(self._entries.items())
            }

    def request_load(self, version: str) -> str:
        """Start loading `version` unless it is loading or ready; a failed load is retried."""
        with self._lock:
            entry = self._entries.get(version)
            if entry is not None and entry.state in (LOADING, READY):
                return entry.state
            self._generation += 1
            generation = self._generation
            self._entries[version] = _Entry(LOADING, generation, time.time())
        self._executor.submit(self._load, version, generation)
        return LOADING

    def revalidate(self, version: str) -> str | None:
        """Compare a ready version's preprocessor with the registry's tag now; on a
        difference, stop serving it and load it again. Returns the version's state.

        Runs a registry call: call it off the event loop. A registry that does not
        answer leaves the version as it is (it was verified when it loaded).
        """
        loaded = self.ready(version)
        if loaded is None:
            return self.state(version)
        try:
            tagged = self._loader.preprocessor_sha256(version)
        except Exception as error:
            log.warning(
                "could not re-read the preprocessor tag of version %s: %s",
                printable(version),
                error,
            )
            return READY
        if tagged == loaded.preprocessor_sha256:
            return READY
        reason = (
            f"the registry binds version {version} to preprocessor sha256 {tagged or 'none'} but "
            f"it was loaded with {loaded.preprocessor_sha256 or 'none'}; loading it again"
        )
        log.warning("%s", printable(reason))
        with self._lock:
            entry = self._entries.get(version)
            if entry is None or entry.loaded is not loaded:
                return entry.state if entry else None
            self._generation += 1
            generation = self._generation
            self._entries[version] = _Entry(LOADING, generation, time.time(), reason=reason)
        loaded.pool.shutdown(wait=False)
        self._executor.submit(self._load, version, generation)
        self._after(release_memory)
        return LOADING

    def revalidate_all(self) -> None:
        for version, state in self.states().items():
            if state == READY:
                self.revalidate(version)

    def unload(self, version: str) -> bool:
        """Forget `version` and release its memory; False when it was not known."""
        with self._lock:
            entry = self._entries.pop(version, None)
            self._changed.notify_all()
        if entry is None:
            return False
        if entry.loaded is not None:
            # Requests already queued on the version still finish; then its threads end.
            entry.loaded.pool.shutdown(wait=False)
        entry.loaded = None
        self._after(release_memory)
        return True

    def wait(self, versions: list[str], timeout: float) -> dict[str, str | None]:
        """Block until none of `versions` is loading, or `timeout`; returns their states."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                states = {v: (e.state if (e := self._entries.get(v)) else None) for v in versions}
                remaining = deadline - time.monotonic()
                if LOADING not in states.values() or remaining <= 0:
                    return states
                self._changed.wait(remaining)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for entry in self._entries.values():
                if entry.loaded is not None:
                    entry.loaded.pool.shutdown(wait=False, cancel_futures=True)

    def _load(self, version: str, generation: int) -> None:
        started = time.perf_counter()
        try:
            servable = self._loader.load(version)
            loaded_at = time.perf_counter()
            reader, warmup_seconds = self._warm(version, servable)
            loaded = LoadedVersion(
                version=version,
                servable=servable,
                reader=reader,
                load_seconds=loaded_at - started,
                warmup_seconds=warmup_seconds,
                pool=ThreadPoolExecutor(
                    self._threads_per_version, thread_name_prefix=f"gray-predict-{version}"
                ),
                preprocessor_sha256=applied_preprocessor(servable),
            )
        except Exception as error:
            reason = error.message if isinstance(error, GrayError) else repr(error)
            log.warning("version %s failed to load: %s", printable(version), printable(reason))
            self._finish(version, generation, FAILED, None, reason)
            # Whatever the failed load built is garbage now; free it once this frame is gone.
            self._after(release_memory)
            return
        if self._finish(version, generation, READY, loaded, None):
            settle_heap()
            log.info(
                "version %s ready (load %.2fs, warm-up %.3fs)",
                version,
                loaded.load_seconds,
                loaded.warmup_seconds,
            )
        else:
            loaded.pool.shutdown(wait=False)
            self._after(release_memory)

    def _after(self, task: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            self._executor.submit(task)

    def _warm(self, version: str, servable: Servable) -> tuple[RequestReader, float | None]:
        """Answer the version's own input example, sent as a client would send it, through
        the request path, before the version may take traffic.

        A version logged without an input example has nothing to warm up with: it is
        ready once loaded (its first requests pay for whatever it builds lazily).
        """
        reader = reader_for(servable)
        body = serving_body(getattr(servable, "input_example", None))
        if body is None:
            log.info("version %s has no input example: ready without a warm-up", version)
            return reader, None
        started = time.perf_counter()
        for _ in range(self._warmup_rounds):
            computed = compute(servable, reader, body, JSON_TYPE)
            if computed.outcome != Outcome.OK:
                raise GatewayError(f"version {version} failed its warm-up: {computed.message}")
        return reader, (time.perf_counter() - started) / max(self._warmup_rounds, 1)

    def _finish(
        self,
        version: str,
        generation: int,
        state: str,
        loaded: LoadedVersion | None,
        reason: str | None,
    ) -> bool:
        """Record a load's result; False when an unload or a newer load made it stale."""
        with self._lock:
            entry = self._entries.get(version)
            current = entry is not None and entry.generation == generation
            if entry is not None and current:
                entry.state = state
                entry.loaded = loaded
                entry.reason = reason
                entry.finished_at = time.time()
            if state == FAILED:
                self._forget_old_failures()
            self._changed.notify_all()
        return current

    def _forget_old_failures(self) -> None:
        """Keep the newest FAILED_KEPT failed entries (the lock is held)."""
        failed = sorted(
            (entry.finished_at or entry.started_at, version)
            for version, entry in self._entries.items()
            if entry.state == FAILED
        )
        for _, version in failed[: max(len(failed) - FAILED_KEPT, 0)]:
            del self._entries[version]


def printable(text: str) -> str:
    """`text` with control characters escaped, so a client's input cannot forge log lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def reader_for(servable: Servable) -> RequestReader:
    """How requests to `servable` are read: its raw input schema (inferred from the input
    example when it declares none), whether gray must enforce it, the fast path."""
    example = getattr(servable, "input_example", None)
    if hasattr(servable, "raw_input_schema"):
        schema = servable.raw_input_schema  # type: ignore[attr-defined]
        checks_itself = bool(getattr(servable, "checks_inputs", False))
    else:
        schema = _schema_of(example)
        checks_itself = False
    enforce = schema is not None and not checks_itself
    positional = None
    if enforce and schema.has_input_names() and hasattr(example, "columns"):
        positional = tuple(str(name) for name in example.columns)
    contract = fast_contract(example)
    sample = contract.fast_frame(_example_payload(example)) if contract is not None else None
    return RequestReader(
        schema=schema,
        metadata=getattr(servable, "metadata", None),
        contract=contract,
        enforce=enforce,
        positional=positional,
        fast_predict=unchecked_predictor(servable, sample),
    )


def _example_payload(example: Any) -> dict[str, Any]:
    """The input example in the form its fast path reads."""
    if hasattr(example, "columns"):
        rows = example.values.tolist()
        return {"dataframe_split": {"columns": list(example.columns), "data": rows}}
    return {"inputs": example.tolist()}


def _schema_of(example: Any) -> Any:
    if example is None:
        return None
    from mlflow.models import infer_signature

    return infer_signature(example).inputs


def serving_body(example: Any) -> bytes | None:
    """The input example as MLflow's clients send it (None without an example)."""
    if example is None:
        return None
    from mlflow.models.utils import convert_input_example_to_serving_input

    body = convert_input_example_to_serving_input(example)
    return body.encode("utf-8") if body is not None else None


def settle_heap() -> None:
    """Move what exists now out of the garbage collector's sight.

    A full collection walks every object (several hundred thousand once mlflow,
    pandas and a model are loaded) and stalls the process for ~200 ms: that was
    the p99 latency. Frozen objects are skipped by collections; young garbage
    is collected first so little of it is frozen.
    """
    gc.collect(1)
    gc.freeze()


def release_memory() -> None:
    """Collect everything (unloaded models included), re-freeze, return pages to the system."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: Any = None


def _malloc_trim() -> Any:
    global _TRIM
    if _TRIM is None:
        name = ctypes.util.find_library("c")
        try:
            _TRIM = ctypes.CDLL(name).malloc_trim if name else False
        except (OSError, AttributeError):
            _TRIM = False
    return _TRIM or None
