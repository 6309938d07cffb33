"""The HTTP face of the gateway: MLflow's scoring protocol plus the admin API.

Public: `POST /invocations`, `GET /ping`, `GET /version`, `GET /health` without a
`model` parameter (MLflow's alias of /ping) and `GET /openapi.json`. Everything
else needs a bearer token of the right scope (`gateway/auth.py`) unless the
gateway runs with --insecure-no-auth on loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from gray.gateway import prometheus
from gray.gateway.auth import Scope, TokenGuard, Tokens, Unauthorized, needs, unauthorized_payload
from gray.gateway.bodies import FeedbackBody, PutRouteBody, RenewBody, RollbackBody
from gray.gateway.feedback import AlreadyLabelled, LabelShapeError, UnknownRequest
from gray.gateway.inputs import dumps, json_default
from gray.gateway.limits import (
    BodyLimit,
    BodyTooLarge,
    BodyTooSlow,
    ConnectionCounters,
    too_large_payload,
    too_slow_payload,
)
from gray.gateway.models import READY, VersionLoader
from gray.gateway.route_state import LeaseRefused, TermsRequired
from gray.gateway.service import OVERRIDE_HEADER, Gateway, PredictionRequest
from gray.gateway.settings import GatewaySettings
from gray.gateway.upkeep import Upkeep

JSON = "application/json"
# Registry versions are numbers; anything else in a path is refused before it is logged.
VERSION_PATTERN = re.compile(r"^[0-9]{1,18}$")


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _describe_problem(problem: Any) -> str:
    where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {problem.get('msg', 'invalid')}"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=json_default).encode("utf-8")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status_code=status, media_type=JSON, headers=headers)


def create_app(
    settings: GatewaySettings,
    loader: VersionLoader | None = None,
    connections: ConnectionCounters | None = None,
) -> FastAPI:
    """The ASGI app. `loader` defaults to the MLflow registry named in `settings`;
    `connections` are the server's connection counters, shown in /metrics."""
    if loader is None:
        from gray.gateway.registry_loader import RegistryLoader

        loader = RegistryLoader(settings.registry_uri, settings.model_name)
    gateway = Gateway(settings, loader)
    upkeep = Upkeep(gateway.routes, gateway.models, settings.verify_interval)
    tokens = Tokens(settings)
    admin_lock = asyncio.Lock()
    mlflow_version = _package_version("mlflow")
    connection_counters = connections or ConnectionCounters()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gateway.start()
        upkeep.start()
        try:
            yield
        finally:
            upkeep.stop()
            gateway.stop()

    app = FastAPI(
        title="gray gateway",
        summary="Serves a registered model's versions, splits traffic, takes orders from gray.",
        version=_package_version("gray-rollout"),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    # The token is checked before the body limit, and both before a body is read.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, pause=settings.header_timeout)
    app.add_middleware(TokenGuard, tokens=tokens, routes=app.router.routes)

    def holds_token(request: Request) -> bool:
        """The caller holds the admin token itself (may force a version)."""
        return tokens.is_admin(request.headers)

    def require_stats(request: Request) -> None:
        tokens.require(request.headers, Scope.STATS)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, refused: Unauthorized) -> Response:
        return _json(unauthorized_payload(refused.scope), 401, {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, error: BodyTooLarge) -> Response:
        return _json(too_large_payload(error.limit), 413, {"Connection": "close"})

    @app.exception_handler(BodyTooSlow)
    async def _too_slow(_: Request, error: BodyTooSlow) -> Response:
        return _json(too_slow_payload(error.pause), 408, {"Connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(_: Request, error: RequestValidationError) -> Response:
        return _json(
            {
                "error": "bad_request",
                "message": "; ".join(_describe_problem(p) for p in error.errors()),
                "detail": json.loads(json.dumps(error.errors(), default=str)),
            },
            422,
        )

    def version_headers() -> dict[str, str]:
        return {"X-Model-Version": gateway.routes.applied.route.baseline}

    # --- the MLflow scoring protocol -------------------------------------------------

    @app.get("/ping")
    async def ping() -> Response:
        waiting = gateway.not_ready()
        if waiting:
            return _json({"status": "loading", "versions": waiting}, 503, version_headers())
        return Response("\n", media_type=JSON, headers=version_headers())

    @app.get("/version")
    async def version() -> Response:
        return Response(mlflow_version, media_type=JSON, headers=version_headers())

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        client = request.client
        answer = await gateway.predict(
            PredictionRequest(
                body=body,
                content_type=request.headers.get("content-type"),
                headers=request.headers,
                client_host=client.host if client else None,
                # Only a forced version needs the token; most requests skip the comparison.
                caller_is_admin=OVERRIDE_HEADER in request.headers and holds_token(request),
                started=started,
            )
        )
        headers = {"X-Request-Id": answer.request_id}
        if answer.version is not None:
            headers["X-Model-Version"] = answer.version
        background = None
        if answer.has_work_after:
            background = BackgroundTask(_after_answer, gateway, answer)
        return Response(
            dumps(answer.payload),
            status_code=answer.status,
            media_type=JSON,
            headers=headers,
            background=background,
        )

    @app.get("/health")
    async def health(
        request: Request,
        model: str | None = Query(
            default=None,
            description="baseline, candidate or a version number; without it, as /ping",
        ),
    ) -> Response:
        if model is None:
            return await ping()
        require_stats(request)
        if model not in ("baseline", "candidate") and not VERSION_PATTERN.match(model):
            return _json(
                {
                    "error": "bad_request",
                    "message": "model must be baseline, candidate or a version number, "
                    f"got {model!r}",
                },
                400,
            )
        route = gateway.routes.applied.route
        if model == "baseline":
            target: str | None = route.baseline
        elif model == "candidate":
            target = route.candidate
        else:
            target = model
        if target is None:
            return _json({"error": "no_candidate", "message": "the route has no candidate"}, 404)
        state = gateway.models.state(target)
        recent = gateway.stats.recent(target)
        return _json(
            {
                "model": model,
                "version": target,
                "state": state or "absent",
                "loaded": state == READY,
                "window_seconds": 60,
                "requests": recent.requests,
                "errors": recent.errors,
                "error_rate": recent.error_rate,
                "mean_latency_seconds": recent.mean_latency,
                "p99_latency_seconds": recent.p99_latency,
            },
            200 if state == READY else 503,
            {"X-Model-Version": target},
        )

    # --- admin --------------------------------------------------------------------

    admin = needs(Scope.ADMIN)
    reader = needs(Scope.STATS)

    def route_payload() -> dict[str, Any]:
        return {
            **gateway.routes.applied.to_dict(),
            **gateway.routes.status(),
            "loaded": gateway.models.states(),
        }

    def bad_version(version: str) -> Response | None:
        if VERSION_PATTERN.match(version):
            return None
        return _json(
            {
                "error": "bad_version",
                "message": "a version is a registry version number such as '3'",
            },
            400,
        )

    def lease_conflict(refused: LeaseRefused) -> Response:
        return _json(
            {
                "error": "lease_expired" if refused.expired else "lease_conflict",
                "message": refused.message,
                "lease": refused.current.to_dict() if refused.current else None,
            },
            409,
        )

    @app.get("/admin/route", **reader)
    async def get_route() -> Response:
        return _json(route_payload())

    @app.put("/admin/route", **admin)
    async def put_route(body: PutRouteBody) -> Response:
        route, lease = body.route.to_spec(), body.lease.to_lease()
        try:
            gateway.routes.terms_for(route, body.ttl, body.hold)
        except TermsRequired as missing:
            return _json({"error": "lease_terms_required", "message": str(missing)}, 422)
        async with admin_lock:
            try:
                gateway.routes.check(lease)
            except LeaseRefused as refused:
                return lease_conflict(refused)
            waiting = {
                version: gateway.models.request_load(version)
                for version in gateway.routed_versions(route)
                if gateway.models.state(version) != READY
            }
            if waiting:
                described = gateway.models.describe()
                return _json(
                    {
                        "error": "version_not_ready",
                        "message": "the route names versions that are not loaded and warm yet: "
                        + ", ".join(f"{v} ({s})" for v, s in sorted(waiting.items())),
                        "versions": {v: described.get(v, {}) for v in sorted(waiting)},
                    },
                    409,
                )
            try:
                await asyncio.to_thread(gateway.put_route, route, lease, body.ttl, body.hold)
            except LeaseRefused as refused:
                return lease_conflict(refused)
        return _json(route_payload())

    @app.post("/admin/route/renew", **admin)
    async def renew_lease(body: RenewBody) -> Response:
        async with admin_lock:
            try:
                await asyncio.to_thread(gateway.routes.renew, body.lease.to_lease(), body.ttl)
            except LeaseRefused as refused:
                return lease_conflict(refused)
        return _json(route_payload())

    @app.post("/admin/rollback", **admin)
    async def rollback(body: RollbackBody | None = None) -> Response:
        lease = body.lease.to_lease() if body and body.lease else None
        async with admin_lock:
            applied = await asyncio.to_thread(gateway.rollback, lease)
        return _json(applied.to_dict())

    @app.get("/admin/stats", **reader)
    async def stats() -> Response:
        return _json(gateway.stats_payload())

    @app.get("/admin/versions", **reader)
    async def versions() -> Response:
        return _json({"versions": gateway.models.describe()})

    @app.post("/admin/versions/{version}/load", **admin)
    async def load_version(version: str) -> Response:
        refused = bad_version(version)
        if refused is not None:
            return refused
        # A ready version is checked against the registry's preprocessor tag first, so a
        # binding made since it loaded makes it load again instead of serving as it was.
        await asyncio.to_thread(gateway.models.revalidate, version)
        state = gateway.models.request_load(version)
        return _json({"version": version, "state": state}, 202)

    @app.delete("/admin/versions/{version}", **admin)
    async def unload_version(version: str) -> Response:
        refused = bad_version(version)
        if refused is not None:
            return refused
        async with admin_lock:
            if version in gateway.routed_versions(gateway.routes.applied.route):
                return _json(
                    {
                        "error": "version_in_use",
                        "message": f"version {version} takes traffic under the route in force",
                    },
                    409,
                )
            if not gateway.models.unload(version):
                return _json({"error": "unknown_version", "message": f"{version} is not here"}, 404)
        return _json({"version": version, "state": "unloaded"})

    @app.get("/admin/samples", **admin)
    async def samples(
        limit: int = Query(default=20, ge=0, le=1000),
        kind: str | None = Query(default=None, pattern="^(prediction|shadow)$"),
        version: str | None = None,
    ) -> Response:
        records = gateway.prediction_log.recent(limit, kind, version)
        return _json({"samples": records})

    @app.post("/feedback", **needs(Scope.FEEDBACK))
    async def feedback(body: FeedbackBody) -> Response:
        if body.request_id is not None:
            try:
                labelled, correct = gateway.feedback.label(body.request_id, body.label)
            except UnknownRequest:
                return _json(
                    {"error": "unknown_request", "message": f"no answer {body.request_id} here"},
                    404,
                )
            except AlreadyLabelled:
                return _json(
                    {"error": "already_labelled", "message": f"{body.request_id} has a label"},
                    409,
                )
            except LabelShapeError as error:
                return _json({"error": "label_shape", "message": str(error)}, 422)
            return _json({"labelled": labelled, "correct": correct})
        accepted, unknown, duplicate, misshapen = 0, [], [], []
        for item in body.labels or []:
            try:
                gateway.feedback.label(item.request_id, item.label)
                accepted += 1
            except UnknownRequest:
                unknown.append(item.request_id)
            except AlreadyLabelled:
                duplicate.append(item.request_id)
            except LabelShapeError:
                misshapen.append(item.request_id)
        return _json(
            {
                "accepted": accepted,
                "unknown": unknown,
                "duplicate": duplicate,
                "misshapen": misshapen,
            }
        )

    @app.get("/metrics", **reader)
    async def metrics() -> Response:
        gateway.stats.set_log_dropped(gateway.prediction_log.dropped)
        text = prometheus.render(
            gateway.stats.view(),
            gateway.routes.applied,
            gateway.models.states(),
            prometheus.Extras(
                lease=gateway.routes.status(),
                lease_expiries=gateway.routes.expiries,
                connections_refused=connection_counters.refused,
                header_timeouts=connection_counters.header_timeouts,
            ),
        )
        return Response(text, media_type=prometheus.CONTENT_TYPE)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        return JSONResponse(
            {"error": "internal", "message": f"{type(error).__name__}: {error}"}, 500
        )

    return app


async def _after_answer(gateway: Gateway, answer: Any) -> None:
    # Runs after the response went out; only hands work to the mirror and replay threads.
    gateway.after_answer(answer)
