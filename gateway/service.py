"""The gateway's core, without HTTP: route a request, answer it, mirror it, count it."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from gray.controller.types import ROUTING_GROUPS, Applied, Lease, RouteSpec
from gray.gateway.batching import Batcher
from gray.gateway.feedback import FeedbackStore
from gray.gateway.inputs import same_output
from gray.gateway.models import READY, LoadedVersion, ModelManager, VersionLoader, settle_heap
from gray.gateway.predlog import PredictionLog
from gray.gateway.replay import FailureReplays
from gray.gateway.route_state import RouteStore
from gray.gateway.routing import Decision, address_in, group_of, parse_address, parse_networks
from gray.gateway.scoring import Computed, compute
from gray.gateway.settings import GatewaySettings
from gray.gateway.stats import GatewayStats, Outcome

log = logging.getLogger("gray.gateway")

OVERRIDE_HEADER = "x-model-version"


@dataclass(frozen=True)
class PredictionRequest:
    body: bytes
    content_type: str | None
    headers: Mapping[str, str]  # lower-case names
    client_host: str | None
    caller_is_admin: bool
    started: float  # perf_counter() when the request arrived


@dataclass(frozen=True)
class PredictionAnswer:
    status: int
    payload: dict[str, Any]
    request_id: str
    version: str | None
    # (candidate, request, baseline's answer, hash group of the request's routing key)
    mirror: tuple[str, PredictionRequest, Computed, int] | None = None
    # (candidate, baseline, request): a live candidate failure to replay on the baseline
    replay: tuple[str, str, PredictionRequest] | None = None

    @property
    def has_work_after(self) -> bool:
        return self.mirror is not None or self.replay is not None


class Gateway:
    """Everything the HTTP layer calls; one per process."""

    def __init__(self, settings: GatewaySettings, loader: VersionLoader) -> None:
        self.settings = settings
        self.stats = GatewayStats(settings.slo_edges)
        self.models = ModelManager(loader, settings.warmup_rounds, settings.predict_threads)
        restored = RouteStore.restore(settings.route_file, settings.model_name)
        if restored is None:
            baseline = loader.resolve(settings.baseline)
            initial = Applied(route=RouteSpec(baseline=baseline), lease=None)
            restored = RouteStore(settings.route_file, settings.model_name, initial)
        else:
            log.info("restored the route in force: %s", restored.applied.to_dict())
        self.routes = restored
        self.prediction_log = PredictionLog(
            settings.log_dir, settings.log_max_bytes, settings.log_backups
        )
        self.feedback = FeedbackStore(self.stats, settings.feedback_window)
        self._override_networks = parse_networks(settings.override_cidrs)
        self._routing_header = settings.routing_header.lower()
        self._mirror_lock = threading.Lock()
        self.replays = FailureReplays()
        self._batchers: dict[str, tuple[LoadedVersion, Batcher]] = {}
        # Request ids: a random per-process prefix and a counter, 32 hex digits like a uuid4
        # but without a system call per request.
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count()
        self._mirror_inflight = 0

    # --- life cycle -------------------------------------------------------------

    def start(self) -> None:
        self.prediction_log.start()
        for version in self.routed_versions(self.routes.applied.route):
            self.models.request_load(version)
        settle_heap()  # the imported libraries never need collecting

    def stop(self) -> None:
        self.replays.shutdown()
        self.models.shutdown()
        self.prediction_log.stop()

    @staticmethod
    def routed_versions(route: RouteSpec) -> list[str]:
        """The versions that `route` sends traffic (live or mirrored) to."""
        versions = [route.baseline]
        if route.candidate and (route.weight > 0 or route.mirror > 0):
            versions.append(route.candidate)
        return versions

    def not_ready(self) -> dict[str, str | None]:
        """Routed versions that cannot answer yet, with their state (None: not loading)."""
        return {
            v: self.models.state(v)
            for v in self.routed_versions(self.routes.applied.route)
            if self.models.state(v) != READY
        }

    # --- predictions ------------------------------------------------------------

    def decide(self, request: PredictionRequest) -> Decision:
        forced = request.headers.get(OVERRIDE_HEADER)
        address = parse_address(request.client_host)
        key = request.headers.get(self._routing_header) or request.client_host or ""
        if forced:
            if request.caller_is_admin or address_in(address, self._override_networks):
                return Decision(forced.strip(), "forced", group_of(key))
            self.stats.count_ignored_override()
        return self.routes.compiled.decide(key, address, request.headers)

    def _submit(self, loaded: LoadedVersion, request: PredictionRequest) -> Awaitable[Computed]:
        """The request on the version's worker thread, alone or batched with others."""
        if self.settings.batch_size > 1:
            return asyncio.wrap_future(
                self.batcher(loaded).submit(request.body, request.content_type)
            )
        return asyncio.get_running_loop().run_in_executor(
            loaded.pool, compute_on, loaded, request.body, request.content_type
        )

    def batcher(self, loaded: LoadedVersion) -> Batcher:
        """The batcher of this load of a version (a reload gets a new one)."""
        with self._mirror_lock:
            entry = self._batchers.get(loaded.version)
            if entry is None or entry[0] is not loaded:
                entry = (loaded, Batcher(loaded, self.settings.batch_size))
                self._batchers[loaded.version] = entry
            return entry[1]

    def _batched(self, version: str) -> dict[str, int]:
        entry = self._batchers.get(version)
        return {"batched_requests": entry[1].batched_requests} if entry is not None else {}

    def _next_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    async def predict(self, request: PredictionRequest) -> PredictionAnswer:
        request_id = self._next_request_id()
        decision = self.decide(request)
        loaded = self.models.ready(decision.version)
        if loaded is None:
            return self._unavailable(request_id, decision)
        try:
            pending = self._submit(loaded, request)
        except RuntimeError:  # unloaded between the lookup and now
            return self._unavailable(request_id, decision)
        computed = await pending
        latency = time.perf_counter() - request.started
        self.stats.record(
            decision.version, decision.role, latency, computed.outcome, decision.group
        )
        if isinstance(computed.outputs, list):  # labels are scored row by row
            self.feedback.remember(
                request_id, decision.version, decision.role, decision.group, computed.outputs
            )
        self.prediction_log.write(
            {
                "kind": "prediction",
                "request_id": request_id,
                "time": time.time(),
                "version": decision.version,
                "route": decision.role,
                "input_hash": input_hash(request.body),
                "output": computed.outputs,
                "latency": latency,
                "status": _status_of(computed.outcome),
                **({"message": computed.message} if computed.message else {}),
            }
        )
        mirror = None
        if decision.mirror_to and computed.outcome != Outcome.BAD_REQUEST:
            mirror = (decision.mirror_to, request, computed, decision.group)
        replay = None
        if decision.role == "candidate" and computed.outcome == Outcome.ERROR:
            replay = (decision.version, self.routes.applied.route.baseline, request)
        return PredictionAnswer(
            status=_status_of(computed.outcome),
            payload=_payload(decision.version, computed),
            request_id=request_id,
            version=decision.version,
            mirror=mirror,
            replay=replay,
        )

    def after_answer(self, answer: PredictionAnswer) -> None:
        """Work that waits until the answer went out: mirroring and failure replays."""
        self.mirror(answer)
        self.replay(answer)

    def replay(self, answer: PredictionAnswer) -> None:
        """Run a candidate's failed request again on the baseline (bounded, off the path)."""
        if answer.replay is None:
            return
        candidate, baseline, request = answer.replay
        loaded = self.models.ready(baseline)
        if loaded is None:
            return
        self.replays.offer(
            candidate, lambda: compute_on(loaded, request.body, request.content_type)
        )

    def _unavailable(self, request_id: str, decision: Decision) -> PredictionAnswer:
        if decision.role == "forced":
            return PredictionAnswer(
                status=404,
                payload={
                    "error": "version_not_loaded",
                    "message": f"version {decision.version} is not loaded and warm here",
                },
                request_id=request_id,
                version=None,
            )
        return PredictionAnswer(
            status=503,
            payload={
                "error": "version_not_ready",
                "message": f"version {decision.version} is "
                f"{self.models.state(decision.version) or 'not loaded'}",
            },
            request_id=request_id,
            version=decision.version,
        )

    # --- mirroring --------------------------------------------------------------

    def mirror(self, answer: PredictionAnswer) -> None:
        """Queue a mirrored request on the candidate's own threads, or drop it when full."""
        if answer.mirror is None or answer.version is None:
            return
        candidate, request, baseline, group = answer.mirror
        loaded = self.models.ready(candidate)
        with self._mirror_lock:
            if loaded is None or self._mirror_inflight >= self.settings.mirror_queue:
                self.stats.count_shadow_dropped()
                return
            self._mirror_inflight += 1
        try:
            future = loaded.pool.submit(compute_on, loaded, request.body, request.content_type)
        except RuntimeError:  # the version was unloaded meanwhile
            self._mirror_done()
            self.stats.count_shadow_dropped()
            return
        baseline_version = answer.version
        future.add_done_callback(
            lambda done: self._mirror_finished(
                answer.request_id, baseline_version, candidate, request, baseline, group, done
            )
        )

    def _mirror_done(self) -> None:
        with self._mirror_lock:
            self._mirror_inflight -= 1

    def _mirror_finished(
        self,
        request_id: str,
        baseline_version: str,
        candidate: str,
        request: PredictionRequest,
        baseline: Computed,
        group: int,
        done: Future[Computed],
    ) -> None:
        try:
            if done.cancelled():
                self.stats.count_shadow_dropped()
                return
            shadow = done.result()
            both_ok = baseline.outcome == Outcome.OK and shadow.outcome == Outcome.OK
            agreed = same_output(baseline.outputs, shadow.outputs) if both_ok else None
            self.stats.record_shadow(
                candidate,
                (baseline.seconds, baseline.outcome),
                (shadow.seconds, shadow.outcome),
                agreed,
                group,
            )
            if baseline.outputs is not None:
                self.feedback.attach_shadow(request_id, candidate, shadow.outputs)
            self.prediction_log.write(
                {
                    "kind": "shadow",
                    "request_id": request_id,
                    "time": time.time(),
                    "input_hash": input_hash(request.body),
                    "agree": agreed,
                    "baseline": _side(baseline_version, baseline),
                    "candidate": _side(candidate, shadow),
                }
            )
        except Exception:
            log.exception("recording mirrored request %s failed", request_id)
        finally:
            self._mirror_done()

    # --- admin ------------------------------------------------------------------

    def put_route(
        self, route: RouteSpec, lease: Lease, ttl: float | None = None, hold: bool = False
    ) -> Applied:
        return self.routes.put(route, lease, ttl, hold)

    def rollback(self, lease: Lease | None) -> Applied:
        return self.routes.rollback(lease)

    def stats_payload(self) -> dict[str, Any]:
        self.stats.set_log_dropped(self.prediction_log.dropped)
        view = self.stats.view()
        return {
            "taken_at": view.taken_at,
            "started_at": view.started_at,
            "slo_edges": list(self.stats.slo_edges),
            "routing_groups": ROUTING_GROUPS,  # every version's `groups` has one value per group
            "versions": {
                v: {**c.to_dict(), **self.replays.counts(v).to_dict(), **self._batched(v)}
                for v, c in view.versions.items()
            },
            "shadow": {v: c.to_dict() for v, c in view.shadow.items()},
            "forced": {v: c.to_dict() for v, c in view.forced.items()},
            "ignored_overrides": view.ignored_overrides,
            "shadow_dropped": view.shadow_dropped,
            "log_dropped": view.log_dropped,
            "route": self.routes.applied.to_dict(),
        }


def compute_on(loaded: LoadedVersion, body: bytes, content_type: str | None) -> Computed:
    """One request on one loaded version, in its worker thread; never raises."""
    return compute(loaded.servable, loaded.reader, body, content_type)


def input_hash(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _payload(version: str, computed: Computed) -> dict[str, Any]:
    """The response body: MLflow's `predictions`, or an error in MLflow's shape plus ours."""
    if computed.outcome == Outcome.OK:
        return {"predictions": computed.outputs}
    if computed.outcome == Outcome.BAD_REQUEST:
        return {"error_code": "BAD_REQUEST", "error": "bad_request", "message": computed.message}
    return {
        "error_code": "INTERNAL_ERROR",
        "error": "model_error",
        "message": f"version {version} failed: {computed.message}",
    }


def _status_of(outcome: str) -> int:
    return {Outcome.OK: 200, Outcome.BAD_REQUEST: 400}.get(outcome, 500)


def _side(version: str, computed: Computed) -> dict[str, Any]:
    side: dict[str, Any] = {
        "version": version,
        "output": computed.outputs,
        "latency": computed.seconds,
        "status": _status_of(computed.outcome),
    }
    if computed.message:
        side["message"] = computed.message
    return side
