"""`gray rollback`'s endpoint write, done before the command line interface is even built.

The time from typing `gray rollback` to users back on the baseline is mostly
Python importing things. This module runs first (from `gray.cli.app.main`),
imports only the journal, the gateway adapter and the value types, and makes
the one fenced write, then the rollout's terminal event in the local journal,
when everything it needs is at hand: a rollout of that id or model in the local
journal, the endpoint address saved beside it, and the gateway token in the
environment. Anything else (help, `--to`, a rollout known
only to MLflow, a refused token) leaves the work to the full command, which
does the same write the slow way. The full command then reports what was done
here and leaves MLflow to a background `gray rollout sync`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from gray.controller.errors import (
    GrayError,
    ReplicaWriteError,
    RolloutAlreadyPromotedError,
    RouterError,
)
from gray.controller.journal import Journal, LocalJournal
from gray.controller.operator import (
    FirstWrite,
    find_local_rollout,
    record_rollback,
    replica_outcomes,
    rollback_endpoint,
    saved_endpoint,
)

if TYPE_CHECKING:
    from gray.controller.routers.gateway import GatewayRouter
    from gray.controller.routers.gateway_fleet import GatewayFleet

TOKEN_ENV = "GRAY_GATEWAY_TOKEN"
# Options that take a value, per command; any other option sends us to the full path.
_VALUE_OPTIONS = {
    "rolled_back": ("--reason", "--output", "-o", "--registry-uri", "--router-url"),
    "aborted": ("--reason", "--output", "-o", "--registry-uri"),
}


_done: FirstWrite | None = None


def taken(target: str, kind: str = "rolled_back") -> FirstWrite | None:
    """The write made for `target` before the CLI started, if any."""
    if _done is None or _done.target != target or _done.kind != kind:
        return None
    return _done


def write_first(argv: list[str], kind: str = "rolled_back") -> FirstWrite | None:
    """Do the rollback write for `gray rollback ARGS` (or `gray rollout abort ARGS`, with
    `kind` "aborted"), and journal it locally, if it can be done cheaply."""
    global _done
    parsed = _plain_rollback(argv, _VALUE_OPTIONS[kind])
    token = os.environ.get(TOKEN_ENV)
    if parsed is None or not token:
        return None
    target, reason = parsed
    local = LocalJournal()
    try:
        state = find_local_rollout(local, target)
    except (GrayError, OSError, ValueError):
        return None  # the full command reports a damaged journal properly
    endpoint = saved_endpoint(local, state.rollout_id) if state else None
    if state is None or endpoint is None or endpoint.type != "gateway":
        return None
    router = _gateway_router(endpoint.addresses, token, endpoint.timeout)
    try:
        applied, seconds = rollback_endpoint(router, state)
        # At once, so that a controller that looks next finds who rolled back and why.
        recorded = record_rollback(
            applied,
            router=router,
            journal=Journal(local),
            registry=None,
            state=state,
            plan=None,
            reason=reason,
            to_previous=False,
            kind=kind,
        )
    except (RolloutAlreadyPromotedError, ReplicaWriteError) as exc:
        # A fleet's rollback that missed a replica waited for it up to the router's
        # timeout already: the full command reports it rather than waiting again.
        replicas = replica_outcomes(router)
        _done = FirstWrite(target, state, None, 0.0, refused=exc, kind=kind, replicas=replicas)
        return _done
    except RouterError:
        return None  # a refused token or an unreachable endpoint: the full path retries
    finally:
        router.close()
    _done = FirstWrite(
        target, state, recorded, seconds, kind=kind, replicas=replica_outcomes(router)
    )
    return _done


def _gateway_router(
    urls: tuple[str, ...], token: str, timeout: float
) -> GatewayRouter | GatewayFleet:
    """The gateway adapter (a fleet's, for several replicas), imported without httpx's own
    command line (`httpx._main` pulls in click, rich and pygments: half of httpx's import
    time, none of it needed to write)."""
    absent = "httpx._main" not in sys.modules
    if absent:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # httpx then skips it
    try:
        from gray.controller.routers.gateway_fleet import gateway_endpoint
    finally:
        if absent:
            del sys.modules["httpx._main"]
    return gateway_endpoint(urls, token, timeout)


def _plain_rollback(argv: list[str], options: tuple[str, ...]) -> tuple[str, str] | None:
    """(MODEL_OR_ID, reason) when `argv` (after `rollback`) is a plain rollback, else None."""
    target: str | None = None
    reason = ""
    pending: str | None = None  # the option whose value comes next
    for arg in argv:
        if pending is not None:
            reason = arg if pending == "--reason" else reason
            pending = None
            continue
        if arg.startswith("-"):
            name, has_value, value = arg.partition("=")
            if name not in options:
                return None  # --help, --to previous, or something the full parser judges
            if has_value:
                reason = value if name == "--reason" else reason
            else:
                pending = name
            continue
        if target is not None:
            return None
        target = arg
    if pending is not None or target is None:
        return None
    return target, reason
