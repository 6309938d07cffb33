"""The router seam: how gray drives any serving endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from gray.controller.errors import LeaseConflictError, LeaseExpiredError
from gray.controller.types import Applied, Lease, RouteSpec

if TYPE_CHECKING:
    from gray.controller.routers.gateway_fleet import RepairReport, ReplicaOutcome


class Router(Protocol):
    """A serving endpoint that splits traffic between a baseline and a candidate.

    Every write carries a lease; an endpoint refuses a write whose epoch is older
    than the one in force (raising LeaseConflictError).
    """

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        """Put `route` in force under `lease`. Candidate traffic returns to the baseline by
        itself `ttl` seconds after the last write or renewal; None holds it with no expiry."""
        ...

    def renew(self, lease: Lease, ttl: float) -> Applied:
        """Extend the route's expiry to `ttl` seconds from now (LeaseConflictError when
        `lease` is no longer the one in force, for example because it expired)."""
        ...

    def read(self) -> Applied:
        """The route and lease in force now."""
        ...

    def rollback(self, lease: Lease | None) -> Applied:
        """Baseline answers 100 %, no mirror, in one write, under a new higher epoch."""
        ...

    def ensure_loaded(self, version: str) -> str | None:
        """Make the endpoint load and warm `version` without sending it traffic; the sha256
        of the preprocessor it applies to that version (None: none)."""
        ...


def check_lease(current: Lease | None, offered: Lease, where: str) -> None:
    """The gateway's rule, for endpoints where gray checks the lease itself: an older
    epoch, or the same epoch under another rollout, loses (LeaseConflictError)."""
    if current is None:
        return
    if offered.epoch < current.epoch:
        raise LeaseConflictError(
            f"{where} refused epoch {offered.epoch}: epoch {current.epoch} of rollout "
            f"{current.rollout_id!r} is in force (a newer lease, for example a rollback)"
        )
    if offered.epoch == current.epoch and offered.rollout_id != current.rollout_id:
        raise LeaseConflictError(
            f"{where}: epoch {offered.epoch} is held by rollout {current.rollout_id!r}, not "
            f"{offered.rollout_id!r}; take over with a higher epoch"
        )


def bind_versions(
    route: RouteSpec, bound: Mapping[str, str], roles: Mapping[str, str]
) -> dict[str, str]:
    """Which of two places (an HAProxy server, an Istio subset, a Seldon model) serves
    each version of `route`, for endpoints whose places are fixed and versions move
    between them. `bound` maps a version to the place it was bound to, `roles` the
    `baseline` and `candidate` roles to their places. A version of the route keeps its
    place (a promoted candidate stays where it is); a new one takes its role's place, or
    the other one when a version of the route already holds it."""
    versions = {route.baseline, route.candidate} - {None}
    places = {version: place for version, place in bound.items() if version in versions}
    for role, version in (("baseline", route.baseline), ("candidate", route.candidate)):
        if version is None or version in places:
            continue
        taken = set(places.values())
        places[version] = next(p for p in (roles[role], *roles.values()) if p not in taken)
    return places


def describe_lease(lease: Lease | None) -> str:
    return "no lease" if lease is None else f"rollout {lease.rollout_id!r} epoch {lease.epoch}"


def refuse_if_expired(
    in_force: Lease | None, after_expiry: bool, offered: Lease, where: str
) -> None:
    """LeaseExpiredError when `offered` is the lease whose expiry ended it: for endpoints
    where gray acts on the expiry itself, the next gray call writes the baseline under
    the next epoch and marks it `after_expiry`."""
    if after_expiry and in_force == Lease(offered.rollout_id, offered.epoch + 1):
        raise LeaseExpiredError(
            f"{where}: the lease of rollout {offered.rollout_id!r} epoch {offered.epoch} "
            "expired unrenewed; the baseline answers everything since"
        )


def check_renewable(current: Lease | None, offered: Lease, where: str) -> None:
    """A renewal extends only the lease in force (LeaseConflictError otherwise: a newer
    lease, for example a rollback, or none because it expired)."""
    if current != offered:
        raise LeaseConflictError(
            f"{where}: lease {offered.rollout_id!r} epoch {offered.epoch} is not the one "
            f"in force ({describe_lease(current)}); nothing to renew"
        )


@runtime_checkable
class FleetRouter(Protocol):
    """An endpoint of several replicas, each of which may lose the route on its own (a
    restart with an older saved route, or none). The runner asks it to repair them at
    every look, before reading the counters, and journals each repair it reports;
    `gray rollback` reports what each replica answered to the rollback."""

    outcomes: tuple[ReplicaOutcome, ...]  # each replica's answer to the last rollback

    def repair(self, lease: Lease, ttl: float | None) -> RepairReport:
        """Rewrite, under `lease`, every replica that lost the route last written under it."""
        ...
