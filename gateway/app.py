"""The HTTP face of the gateway: MLflow's scoring protocol plus the admin API.

Public: `POST /invocations`, `GET /ping`, `GET /version`, `GET /health` without a
`model` parameter (MLflow's alias of /ping) and `GET /openapi.json`. Everything
else needs a bearer token of the right scope (`gateway/auth.py`) unless the
gateway runs with --insecure-no-auth on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI

from gray.gateway.auth import TokenGuard, Tokens
from gray.gateway.endpoints_admin import add_admin_routes
from gray.gateway.endpoints_feedback import add_feedback_route
from gray.gateway.endpoints_scoring import add_scoring_routes
from gray.gateway.http_errors import add_error_handlers
from gray.gateway.invocations import InvocationsFastPath, document
from gray.gateway.limits import BodyLimit, ConnectionCounters
from gray.gateway.models import VersionLoader
from gray.gateway.service import Gateway
from gray.gateway.settings import GatewaySettings
from gray.gateway.upkeep import Upkeep


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


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
    # Outermost: /invocations answered without FastAPI's layers (gateway/invocations.py).
    app.add_middleware(
        InvocationsFastPath,
        gateway=gateway,
        tokens=tokens,
        limit=settings.max_body_bytes,
        pause=settings.header_timeout,
    )

    add_error_handlers(app)
    add_scoring_routes(app, gateway, tokens, mlflow_version)
    add_admin_routes(app, gateway, admin_lock, connection_counters)
    add_feedback_route(app, gateway)
    document(app)
    return app
