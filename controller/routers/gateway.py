"""The Router for gray's built-in gateway, over its admin API.

Transport failures and 5xx answers are retried a bounded number of times with
backoff (every write is idempotent under its lease); a 409 is never retried
blindly: a lease conflict is raised at once, and a "version not ready" answer
makes `apply` wait (bounded) for the version to load and warm, then write again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from gray.controller.errors import (
    EndpointUnreachableError,
    LeaseConflictError,
    LeaseExpiredError,
    RouterError,
    VersionNotLoadedError,
)
from gray.controller.types import Applied, Lease, RouteSpec

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_LOAD_TIMEOUT_SECONDS = 300.0
DEFAULT_RETRIES = 3
RETRY_BACKOFF_SECONDS = 0.5
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 1.0


class GatewayRouter:
    """Drives one gateway; `transport` lets tests swap the network (httpx.MockTransport)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        *,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT_SECONDS,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._load_timeout = load_timeout
        self._retries = retries
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GatewayRouter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the Router protocol ----------------------------------------------------------

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        body: dict[str, Any] = {"route": route.to_dict(), "lease": lease.to_dict()}
        if route.candidate is not None and (route.weight > 0 or route.mirror > 0):
            # The gateway wants the terms of candidate traffic said out loud.
            body.update({"ttl": ttl} if ttl is not None else {"hold": True})
        deadline = self._clock() + self._load_timeout
        while True:
            response = self._request("PUT", "/admin/route", json=body)
            if response.status_code == 200:
                return self._applied(response)
            error = _error_code(response)
            if response.status_code == 409 and error == "version_not_ready":
                if self._clock() >= deadline:
                    raise VersionNotLoadedError(
                        f"the gateway at {self.url} still refuses the route after "
                        f"{self._load_timeout:g}s: {_message(response)}"
                    )
                versions = list(_json(response).get("versions") or {})
                self._wait_ready(versions or _route_versions(route), deadline)
                continue
            raise self._failure("apply the route", response)

    def read(self) -> Applied:
        response = self._request("GET", "/admin/route")
        if response.status_code != 200:
            raise self._failure("read the route", response)
        return self._applied(response)

    def rollback(self, lease: Lease | None) -> Applied:
        body = {"lease": lease.to_dict() if lease else None}
        response = self._request("POST", "/admin/rollback", json=body)
        if response.status_code != 200:
            raise self._failure("roll back", response)
        return self._applied(response)

    def renew(self, lease: Lease, ttl: float) -> Applied:
        body = {"lease": lease.to_dict(), "ttl": ttl}
        response = self._request("POST", "/admin/route/renew", json=body)
        if response.status_code != 200:
            raise self._failure("renew the lease", response)
        return self._applied(response)

    def ensure_loaded(self, version: str) -> str | None:
        deadline = self._clock() + self._load_timeout
        response = self._request("POST", f"/admin/versions/{version}/load")
        if response.status_code not in (200, 202):
            raise self._failure(f"load version {version}", response)
        self._wait_ready([version], deadline)
        sha256 = (self.versions().get(version) or {}).get("preprocessor_sha256")
        return sha256 if isinstance(sha256, str) else None

    # --- extras the CLI and tests use ----------------------------------------------------

    def versions(self) -> dict[str, dict[str, Any]]:
        response = self._request("GET", "/admin/versions")
        if response.status_code != 200:
            raise self._failure("list versions", response)
        return dict(_json(response).get("versions") or {})

    def samples(self, kind: str, version: str, limit: int) -> list[dict[str, Any]]:
        """The newest records of the prediction log still in the gateway's memory."""
        params: dict[str, str | int] = {"kind": kind, "version": version, "limit": limit}
        response = self._request("GET", "/admin/samples", params=params)
        if response.status_code != 200:
            raise self._failure("read the prediction log", response)
        found = _json(response).get("samples")
        return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []

    def unload(self, version: str) -> None:
        response = self._request("DELETE", f"/admin/versions/{version}")
        if response.status_code != 200:
            raise self._failure(f"unload version {version}", response)

    # --- plumbing -------------------------------------------------------------------------

    def _wait_ready(self, versions: list[str], deadline: float) -> None:
        """Poll until every version is ready; a failed load or the deadline raises."""
        pause = POLL_FIRST_SECONDS
        while True:
            known = self.versions()
            states = {v: (known.get(v) or {}).get("state") for v in versions}
            failed = {
                v: (known.get(v) or {}).get("reason") for v, s in states.items() if s == "failed"
            }
            if failed:
                detail = "; ".join(f"version {v}: {reason}" for v, reason in failed.items())
                raise VersionNotLoadedError(f"the gateway at {self.url} could not load {detail}")
            if all(state == "ready" for state in states.values()):
                return
            missing = [v for v, s in states.items() if s is None]
            for version in missing:
                # Unloaded meanwhile, or the gateway restarted: ask again.
                self._request("POST", f"/admin/versions/{version}/load")
            if self._clock() >= deadline:
                waiting = ", ".join(f"{v} ({s or 'not loaded'})" for v, s in states.items())
                raise VersionNotLoadedError(
                    f"the gateway at {self.url} did not load {waiting} within "
                    f"{self._load_timeout:g}s"
                )
            self._sleep(pause)
            pause = min(pause * 2, POLL_MAX_SECONDS)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One admin call, retried on transport errors and 5xx answers."""
        delay = RETRY_BACKOFF_SECONDS
        for attempt in range(self._retries + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 500:
                    return response
                failure = f"HTTP {response.status_code}: {_message(response)}"
            if attempt < self._retries:
                self._sleep(delay)
                delay *= 2
        raise EndpointUnreachableError(
            f"the gateway at {self.url} failed {method} {path} after "
            f"{self._retries + 1} attempts: {failure}"
        )

    def _applied(self, response: httpx.Response) -> Applied:
        try:
            return Applied.from_dict(_json(response))
        except (KeyError, TypeError, ValueError) as error:
            raise RouterError(
                f"the gateway at {self.url} answered an unreadable route: {error!r}"
            ) from None

    def _failure(self, what: str, response: httpx.Response) -> RouterError:
        status, code, message = response.status_code, _error_code(response), _message(response)
        if status == 409 and code == "lease_expired":
            return LeaseExpiredError(f"the gateway at {self.url} let the lease expire: {message}")
        if status == 409 and code == "lease_conflict":
            return LeaseConflictError(
                f"the gateway at {self.url} refused to {what}: {message}; a newer lease "
                "(for example a rollback) is in force"
            )
        if status == 401:
            return RouterError(unauthorized_message(self.url, self._has_token))
        return RouterError(f"the gateway at {self.url} could not {what}: HTTP {status}: {message}")


def unauthorized_message(url: str, token_sent: bool) -> str:
    """Why a gateway answered 401: no token set here, or the one sent is not accepted."""
    if not token_sent:
        return (
            f"the gateway at {url} needs an admin token and none is set: the plan's router "
            'has no token (add token: "${GRAY_GATEWAY_TOKEN}") or the variable it names is '
            "empty; set GRAY_GATEWAY_TOKEN to the gateway's admin token"
        )
    return (
        f"the gateway at {url} refused the admin token (HTTP 401); check the router token in "
        "the plan or $GRAY_GATEWAY_TOKEN"
    )


def _route_versions(route: RouteSpec) -> list[str]:
    return [route.baseline] + ([route.candidate] if route.candidate else [])


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_code(response: httpx.Response) -> str | None:
    code = _json(response).get("error")
    return code if isinstance(code, str) else None


def _message(response: httpx.Response) -> str:
    data = _json(response)
    message = data.get("message") or data.get("detail")
    if message:
        return str(message)
    return response.text[:300] or response.reason_phrase
