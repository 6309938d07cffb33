"""The admin API gray drives (route, lease, rollback, versions, samples) and what
operators read (/admin/stats, /metrics). Writes are serialised by one lock."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import Response

from gray.gateway import prometheus
from gray.gateway.auth import Scope, needs
from gray.gateway.bodies import PutRouteBody, RenewBody, RollbackBody
from gray.gateway.limits import (
    ConnectionCounters,
)
from gray.gateway.models import READY
from gray.gateway.responses import VERSION_PATTERN, json_response
from gray.gateway.route_state import LeaseRefused, TermsRequired
from gray.gateway.service import Gateway


# Long because FastAPI declares each endpoint as a handler on the app; every handler
# here is short, and they share the gateway and its lock.
def add_admin_routes(
    app: FastAPI,
    gateway: Gateway,
    admin_lock: asyncio.Lock,
    connection_counters: ConnectionCounters,
) -> None:
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
        return json_response(
            {
                "error": "bad_version",
                "message": "a version is a registry version number such as '3'",
            },
            400,
        )

    def lease_conflict(refused: LeaseRefused) -> Response:
        return json_response(
            {
                "error": "lease_expired" if refused.expired else "lease_conflict",
                "message": refused.message,
                "lease": refused.current.to_dict() if refused.current else None,
            },
            409,
        )

    @app.get("/admin/route", **reader)
    async def get_route() -> Response:
        return json_response(route_payload())

    @app.put("/admin/route", **admin)
    async def put_route(body: PutRouteBody) -> Response:
        route, lease = body.route.to_spec(), body.lease.to_lease()
        try:
            gateway.routes.terms_for(route, body.ttl, body.hold)
        except TermsRequired as missing:
            return json_response({"error": "lease_terms_required", "message": str(missing)}, 422)
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
                return json_response(
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
        return json_response(route_payload())

    @app.post("/admin/route/renew", **admin)
    async def renew_lease(body: RenewBody) -> Response:
        async with admin_lock:
            try:
                await asyncio.to_thread(gateway.routes.renew, body.lease.to_lease(), body.ttl)
            except LeaseRefused as refused:
                return lease_conflict(refused)
        return json_response(route_payload())

    @app.post("/admin/rollback", **admin)
    async def rollback(body: RollbackBody | None = None) -> Response:
        lease = body.lease.to_lease() if body and body.lease else None
        async with admin_lock:
            applied = await asyncio.to_thread(gateway.rollback, lease)
        return json_response(applied.to_dict())

    # The counters (per hash group too) are copied and written out on a worker thread,
    # not on the event loop that answers predictions.
    @app.get("/admin/stats", **reader)
    async def stats() -> Response:
        return json_response(await asyncio.to_thread(gateway.stats_payload))

    @app.get("/admin/versions", **reader)
    async def versions() -> Response:
        return json_response({"versions": gateway.models.describe()})

    @app.post("/admin/versions/{version}/load", **admin)
    async def load_version(version: str) -> Response:
        refused = bad_version(version)
        if refused is not None:
            return refused
        # A ready version is checked against the registry's preprocessor tag first, so a
        # binding made since it loaded makes it load again instead of serving as it was.
        await asyncio.to_thread(gateway.models.revalidate, version)
        state = gateway.models.request_load(version)
        return json_response({"version": version, "state": state}, 202)

    @app.delete("/admin/versions/{version}", **admin)
    async def unload_version(version: str) -> Response:
        refused = bad_version(version)
        if refused is not None:
            return refused
        async with admin_lock:
            if version in gateway.routed_versions(gateway.routes.applied.route):
                return json_response(
                    {
                        "error": "version_in_use",
                        "message": f"version {version} takes traffic under the route in force",
                    },
                    409,
                )
            if not gateway.models.unload(version):
                return json_response(
                    {"error": "unknown_version", "message": f"{version} is not here"}, 404
                )
        return json_response({"version": version, "state": "unloaded"})

    @app.get("/admin/samples", **admin)
    async def samples(
        limit: int = Query(default=20, ge=0, le=1000),
        kind: str | None = Query(default=None, pattern="^(prediction|shadow)$"),
        version: str | None = None,
    ) -> Response:
        records = gateway.prediction_log.recent(limit, kind, version)
        return json_response({"samples": records})

    def metrics_page() -> str:
        gateway.stats.set_log_dropped(gateway.prediction_log.dropped)
        return prometheus.render(
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

    @app.get("/metrics", **reader)
    async def metrics() -> Response:
        text = await asyncio.to_thread(metrics_page)
        return Response(text, media_type=prometheus.CONTENT_TYPE)
