"""Who may call what: three bearer tokens with their own scopes, compared in constant time.

- admin (`GRAY_GATEWAY_TOKEN`): everything, including forcing a version with X-Model-Version;
- feedback (`GRAY_GATEWAY_FEEDBACK_TOKEN`): `POST /feedback` only, for labelling jobs;
- stats (`GRAY_GATEWAY_STATS_TOKEN`): read-only views: the route, versions, stats,
  `/metrics` and `GET /health?model=`.

The admin token is accepted wherever a scoped token is. Without any token (loopback with
--insecure-no-auth) every call is allowed.

A route names its scope once, as `**needs(Scope.X)` in its decorator: the schema at
/openapi.json shows it (`x-token-scope`), and `TokenGuard` enforces it before the request's
body is read, so a caller without the token learns nothing about what it sent.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from gray.gateway.limits import send_json
from gray.gateway.settings import GatewaySettings

SCOPE_KEY = "x-token-scope"


class Scope(StrEnum):
    ADMIN = "admin"
    FEEDBACK = "feedback"
    STATS = "stats"


class Unauthorized(Exception):
    """The request lacks a token that grants `scope`."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope.value)
        self.scope = scope


def offered_token(headers: Mapping[str, str]) -> str | None:
    """The bearer token of an `Authorization` header, or None."""
    scheme, _, offered = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return offered.strip()


def _same(offered: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), expected.encode())


class Tokens:
    """The gateway's tokens and the scopes each one grants."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._admin = settings.token
        self._by_scope = {
            Scope.ADMIN: None,
            Scope.FEEDBACK: settings.feedback_token,
            Scope.STATS: settings.stats_token,
        }

    @property
    def open(self) -> bool:
        """No token configured: the admin API is served without authentication."""
        return self._admin is None

    def grants(self, headers: Mapping[str, str], scope: Scope) -> bool:
        if self.open:
            return True
        offered = offered_token(headers)
        if offered is None:
            return False
        # Compare with every token, whatever matches first, so timing says nothing about which.
        admin = _same(offered, self._admin)
        scoped = _same(offered, self._by_scope[scope])
        return admin or scoped

    def is_admin(self, headers: Mapping[str, str]) -> bool:
        """Whether the caller holds the admin token itself (False when no token is set)."""
        offered = offered_token(headers)
        return offered is not None and _same(offered, self._admin)

    def require(self, headers: Mapping[str, str], scope: Scope) -> None:
        if not self.grants(headers, scope):
            raise Unauthorized(scope)


def unauthorized_payload(scope: Scope) -> dict[str, str]:
    """The 401 answer's body, from the middleware and from a route alike."""
    accepted = {
        Scope.ADMIN: "the admin token",
        Scope.FEEDBACK: "the feedback or the admin token",
        Scope.STATS: "the stats or the admin token",
    }[scope]
    return {
        "error": "unauthorized",
        "message": f"send {accepted} as 'Authorization: Bearer <token>'",
    }


def needs(scope: Scope) -> dict[str, Any]:
    """Decorator arguments that give a route its token scope (enforced by TokenGuard)."""
    return {"openapi_extra": {SCOPE_KEY: scope.value}}


class TokenGuard:
    """ASGI middleware: a request to a route with a scope needs a token that grants it."""

    def __init__(self, app: ASGIApp, tokens: Tokens, routes: Any) -> None:
        self.app = app
        self.tokens = tokens
        self.routes = routes  # the FastAPI app's routes, matched in order

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.tokens.open:
            needed = self._scope_of(scope)
            if needed is not None and not self.tokens.grants(Headers(scope=scope), needed):
                await send_json(
                    send, 401, unauthorized_payload(needed), (b"www-authenticate", b"Bearer")
                )
                return
        await self.app(scope, receive, send)

    def _scope_of(self, scope: AsgiScope) -> Scope | None:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                extra = getattr(route, "openapi_extra", None) or {}
                value = extra.get(SCOPE_KEY)
                return Scope(value) if value else None
        return None
