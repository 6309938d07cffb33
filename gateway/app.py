"""The HTTP face of the gateway: MLflow's scoring protocol plus the admin API.

Public: `POST /invocations`, `GET /ping`, `GET /version`, and `GET /health`
without a `model` parameter (MLflow's alias of /ping). Everything else needs the
admin bearer token unless the gateway runs with --insecure-no-auth on loopback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from gray.gateway import prometheus
from gray.gateway.bodies import FeedbackBody, PutRouteBody, RollbackBody
from gray.gateway.feedback import AlreadyLabelled, LabelShapeError, UnknownRequest
from gray.gateway.inputs import json_default
from gray.gateway.models import READY, VersionLoader
from gray.gateway.route_state import LeaseRefused
from gray.gateway.service import Gateway, PredictionRequest
from gray.gateway.settings import GatewaySettings

JSON = "application/json"


class Unauthorized(Exception):
    pass


def _mlflow_version() -> str:
    try:
        return metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return "unknown"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, default=json_default).encode("utf-8")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status_code=status, media_type=JSON, headers=headers)


def create_app(settings: GatewaySettings, loader: VersionLoader | None = None) -> FastAPI:
    """The ASGI app. `loader` defaults to the MLflow registry named in `settings`."""
    if loader is None:
        from gray.gateway.registry_loader import RegistryLoader

        loader = RegistryLoader(settings.registry_uri, settings.model_name)
    gateway = Gateway(settings, loader)
    admin_lock = asyncio.Lock()
    mlflow_version = _mlflow_version()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gateway.start()
        try:
            yield
        finally:
            gateway.stop()

    app = FastAPI(
        title="gray gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.gateway = gateway

    def holds_token(request: Request) -> bool:
        if settings.token is None:
            return False
        header = request.headers.get("authorization", "")
        scheme, _, offered = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(offered.strip().encode(), settings.token.encode())

    def require_admin(request: Request) -> None:
        if settings.token is not None and not holds_token(request):
            raise Unauthorized()

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, __: Unauthorized) -> Response:
        return _json(
            {"error": "unauthorized", "message": "send the admin token as 'Authorization: Bearer'"},
            401,
            {"WWW-Authenticate": "Bearer"},
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
                caller_is_admin=holds_token(request),
                started=started,
            )
        )
        headers = {"X-Request-Id": answer.request_id}
        if answer.version is not None:
            headers["X-Model-Version"] = answer.version
        background = None
        if answer.mirror is not None:
            background = BackgroundTask(_schedule_mirror, gateway, answer)
        return Response(
            _dumps(answer.payload),
            status_code=answer.status,
            media_type=JSON,
            headers=headers,
            background=background,
        )

    @app.get("/health")
    async def health(request: Request, model: str | None = None) -> Response:
        if model is None:
            return await ping()
        require_admin(request)
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

    admin = [Depends(require_admin)]

    def route_payload() -> dict[str, Any]:
        return {**gateway.routes.applied.to_dict(), "loaded": gateway.models.states()}

    def lease_conflict(refused: LeaseRefused) -> Response:
        return _json(
            {
                "error": "lease_conflict",
                "message": refused.message,
                "lease": refused.current.to_dict() if refused.current else None,
            },
            409,
        )

    @app.get("/admin/route", dependencies=admin)
    async def get_route() -> Response:
        return _json(route_payload())

    @app.put("/admin/route", dependencies=admin)
    async def put_route(body: PutRouteBody) -> Response:
        route, lease = body.route.to_spec(), body.lease.to_lease()
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
                await asyncio.to_thread(gateway.put_route, route, lease)
            except LeaseRefused as refused:
                return lease_conflict(refused)
        return _json(route_payload())

    @app.post("/admin/rollback", dependencies=admin)
    async def rollback(body: RollbackBody | None = None) -> Response:
        lease = body.lease.to_lease() if body and body.lease else None
        async with admin_lock:
            applied = await asyncio.to_thread(gateway.rollback, lease)
        return _json(applied.to_dict())

    @app.get("/admin/stats", dependencies=admin)
    async def stats() -> Response:
        return _json(gateway.stats_payload())

    @app.get("/admin/versions", dependencies=admin)
    async def versions() -> Response:
        return _json({"versions": gateway.models.describe()})

    @app.post("/admin/versions/{version}/load", dependencies=admin)
    async def load_version(version: str) -> Response:
        state = gateway.models.request_load(version)
        return _json({"version": version, "state": state}, 202)

    @app.delete("/admin/versions/{version}", dependencies=admin)
    async def unload_version(version: str) -> Response:
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

    @app.get("/admin/samples", dependencies=admin)
    async def samples(
        limit: int = 20, kind: str | None = None, version: str | None = None
    ) -> Response:
        records = gateway.prediction_log.recent(min(max(limit, 0), 1000), kind, version)
        return _json({"samples": records})

    @app.post("/feedback", dependencies=admin)
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

    @app.get("/metrics", dependencies=admin)
    async def metrics() -> Response:
        gateway.stats.set_log_dropped(gateway.prediction_log.dropped)
        text = prometheus.render(
            gateway.stats.view(), gateway.routes.applied, gateway.models.states()
        )
        return Response(text, media_type=prometheus.CONTENT_TYPE)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> Response:
        return JSONResponse(
            {"error": "internal", "message": f"{type(error).__name__}: {error}"}, 500
        )

    return app


async def _schedule_mirror(gateway: Gateway, answer: Any) -> None:
    # Runs after the response went out; only hands the work to the mirror pool.
    gateway.mirror(answer)
