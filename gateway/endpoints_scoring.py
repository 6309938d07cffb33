"""MLflow's scoring protocol: /ping, /version, and /health (with a `model` parameter, a
version's recent health, for a stats token). POST /invocations is `gateway/invocations.py`."""

from __future__ import annotations

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from gray.gateway.auth import Scope, Tokens
from gray.gateway.models import READY
from gray.gateway.responses import JSON, VERSION_PATTERN, json_response
from gray.gateway.service import Gateway


# Long because FastAPI declares each endpoint as a handler on the app; every handler
# here is short, and they share the gateway and its lock.
def add_scoring_routes(app: FastAPI, gateway: Gateway, tokens: Tokens, mlflow_version: str) -> None:
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
