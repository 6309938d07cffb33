"""MLflow's scoring protocol: /invocations, /ping, /version, and /health (with a
`model` parameter, a version's recent health, for a stats token)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask

from gray.gateway.auth import Scope, Tokens
from gray.gateway.inputs import dumps
from gray.gateway.models import READY
from gray.gateway.responses import JSON, VERSION_PATTERN, json_response
from gray.gateway.service import OVERRIDE_HEADER, Gateway, PredictionRequest


# Long because FastAPI declares each endpoint as a handler on the app; every handler
# here is short, and they share the gateway and its lock.
def add_scoring_routes(app: FastAPI, gateway: Gateway, tokens: Tokens, mlflow_version: str) -> None:
    def holds_token(request: Request) -> bool:
        """The caller holds the admin token itself (may force a version)."""
        return tokens.is_admin(request.headers)

    def require_stats(request: Request) -> None:
        tokens.require(request.headers, Scope.STATS)

    def version_headers() -> dict[str, str]:
        return {"X-Model-Version": gateway.routes.applied.route.baseline}

    # --- the MLflow scoring protocol -------------------------------------------------

    @app.get("/ping")
    async def ping() -> Response:
        waiting = gateway.not_ready()
        if waiting:
            return json_response({"status": "loading", "versions": waiting}, 503, version_headers())
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
            return json_response(
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
            return json_response(
                {"error": "no_candidate", "message": "the route has no candidate"}, 404
            )
        state = gateway.models.state(target)
        recent = gateway.stats.recent(target)
        return json_response(
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


async def _after_answer(gateway: Gateway, answer: Any) -> None:
    # Runs after the response went out; only hands work to the mirror and replay threads.
    gateway.after_answer(answer)
