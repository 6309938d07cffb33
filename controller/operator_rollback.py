"""`gray rollback` and `gray rollout abort` as one operation: find the rollout, write the
endpoint, then the bookkeeping (the local journal now, MLflow in the background).

The write itself and the record after it are `operator.py`'s; this module decides
where the rollout, its plan, its journal and its endpoint come from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gray.controller import detached, lookup, operator
from gray.controller.errors import ConfigError, GrayError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.routers import build_router
from gray.controller.state import RolloutState

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.registry import Registry
    from gray.controller.routers.base import Router
    from gray.controller.routers.gateway_fleet import ReplicaOutcome
    from gray.controller.types import Applied

GATEWAY_URL_ENV = "GRAY_GATEWAY_URL"
GATEWAY_TOKEN_ENV = "GRAY_GATEWAY_TOKEN"

Warn = Callable[[str], None]


@dataclass(frozen=True)
class RollbackDone:
    """What an operator's rollback did, for the command to report."""

    state: RolloutState | None  # None: an endpoint that no rollout names
    recorded: operator.Recorded
    seconds: float  # the endpoint write
    replicas: tuple[ReplicaOutcome, ...] = ()  # a gateway fleet's answers, one per replica


@dataclass(frozen=True)
class RollbackRequest:
    target: str  # a rollout id or a model name
    reason: str = ""
    to_previous: bool = False
    registry_uri: str | None = None
    router_url: str | None = None  # the endpoint to roll back when no rollout names one
    kind: str = "rolled_back"  # or "aborted"


def roll_back(
    request: RollbackRequest, on_warning: Warn, first: operator.FirstWrite | None = None
) -> RollbackDone:
    """Roll back, or finish the bookkeeping of `first`, the write the fast path made.

    The rollout comes from the local journal when it can (no MLflow before the write),
    else from the MLflow journal; with none, the endpoint of `router_url` (or
    $GRAY_GATEWAY_URL) is rolled back without a rollout."""
    if first is not None:
        if first.refused is not None:
            raise first.refused
        assert first.recorded is not None
        if first.recorded.event is not None:
            _sync(first.state.rollout_id, request.registry_uri, on_warning)
        return RollbackDone(first.state, first.recorded, first.seconds, first.replicas)
    journal: Journal | None = None
    local = LocalJournal()
    state = operator.find_local_rollout(local, request.target)
    plan = lookup.local_plan(local, state)
    if state is None and not (request.router_url or os.environ.get(GATEWAY_URL_ENV)):
        journal = _shared_journal(request.target, request.registry_uri, on_warning)
        state, plan = lookup.find_rollout(journal, request.target)
        if state is None:
            raise lookup.unknown_target(request.target, journal, request.registry_uri)
    router = _router_for(plan, request.router_url)
    applied, seconds = operator.rollback_endpoint(router, state, to_previous=request.to_previous)
    replicas = operator.replica_outcomes(router)
    recorded = _record(applied, state, plan, router, journal, request, on_warning)
    return RollbackDone(state, recorded, seconds, replicas)


def _record(
    applied: Applied,
    state: RolloutState | None,
    plan: Plan | None,
    router: Router | None,
    journal: Journal | None,
    request: RollbackRequest,
    on_warning: Warn,
) -> operator.Recorded:
    """The journal after the write. A rollout in the local journal gets its terminal event
    there at once and MLflow from a detached `gray rollout sync`; otherwise (a rollout
    known only to MLflow, or `--to previous`, which moves aliases) MLflow is written here."""
    in_shared_only = journal is not None
    registry: Registry | None = None
    if request.to_previous or in_shared_only:
        if journal is None:
            rollout_id = state.rollout_id if state else None
            journal = _shared_journal(rollout_id, request.registry_uri, on_warning)
        try:
            registry = lookup.open_registry(plan, request.registry_uri)
        except GrayError as exc:
            on_warning(f"registry unavailable: {exc.message}")
    elif state is not None:
        journal = Journal(LocalJournal())
    if router is None and request.to_previous:
        router = _router_for(plan, None)
    recorded = operator.record_rollback(
        applied,
        router=router,
        journal=journal,
        registry=registry,
        state=state,
        plan=plan,
        reason=request.reason,
        to_previous=request.to_previous,
        kind=request.kind,
    )
    if state is not None and registry is None and recorded.event is not None:
        _sync(state.rollout_id, request.registry_uri, on_warning)
    return recorded


def _sync(rollout_id: str, registry_uri: str | None, on_warning: Warn) -> None:
    """Send the new event to MLflow (and tag the candidate) from a detached process: the
    command returns without waiting for MLflow, the local journal holds the record."""
    try:
        detached.sync_in_background(rollout_id, LocalJournal().root, registry_uri, tag=True)
    except OSError as exc:
        on_warning(
            f"could not start `gray rollout sync {rollout_id}` ({exc}); run it to update MLflow"
        )


def _shared_journal(rollout_id: str | None, registry_uri: str | None, on_warning: Warn) -> Journal:
    journal, _ = lookup.journal_for(rollout_id, registry_uri, on_warning)
    return journal


def _router_for(plan: Plan | None, router_url: str | None) -> Router:
    """The rollout's own endpoint, else the gateway the flag or the environment names."""
    if plan is not None:
        return build_router(plan.router, plan)
    from gray.controller.routers.gateway_spec import GatewayRouterSpec

    url = router_url or os.environ.get(GATEWAY_URL_ENV)
    if not url:
        raise ConfigError(
            "no rollout found for this name and no endpoint given; pass --router-url or set "
            f"{GATEWAY_URL_ENV}"
        )
    return build_router(GatewayRouterSpec(url=url, token=os.environ.get(GATEWAY_TOKEN_ENV)))
