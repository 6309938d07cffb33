"""The Router over one Kubernetes custom object: the lease, its expiry, rollback and
read-back, the same for every platform; what a route looks like in the object (an
InferenceService's canary percent, a VirtualService's weights, an Experiment's
candidates) is the `Platform`'s.

Expiry. Kubernetes keeps an object as written; it cannot send traffic back to the
baseline by itself when a controller stops. The lease annotation keeps the expiry, and
the first gray call after it (a late renewal, a write, a read) rolls the object back
under the next epoch, as the gateway does on its own (docs/platforms.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from gray.controller.errors import (
    RouteNotSupportedError,
    RouteVerificationError,
)
from gray.controller.routers.base import check_lease, check_renewable, refuse_if_expired
from gray.controller.routers.kubernetes_object import (
    KubeObject,
    KubernetesObject,
    LeaseMark,
    Patch,
    RouteRecord,
    marks_patch,
)
from gray.controller.types import Applied, Lease, RouteSpec

ROLLBACK_ROLLOUT_ID = "rollback"  # the lease's rollout id when a rollback knows none
SETTLE_POLL_SECONDS = 0.05


class Platform(Protocol):
    """How a route is written into, and read out of, one kind of object."""

    def problems(self, route: RouteSpec) -> list[tuple[str, str]]:
        """What of `route` the platform cannot carry, as (stage field, reason): `weight`,
        `mirror` or `audience`. A write refuses the first; plan validation names each."""
        ...

    def places(self, route: RouteSpec, record: RouteRecord | None) -> dict[str, str]:
        """Where each version of `route` is served (a storage URI, a subset, a model)."""
        ...

    def spec_patch(self, obj: KubeObject, route: RouteSpec, places: dict[str, str]) -> Patch:
        """The merge patch that puts `route` in force on `obj`."""
        ...

    def route_of(self, obj: KubeObject, record: RouteRecord | None) -> RouteSpec:
        """The route `obj` carries now, its versions named through `record`."""
        ...

    def settled(self, obj: KubeObject) -> bool:
        """Whether the object's status shows its latest spec in force."""
        ...


class ObjectRouter:
    """The Router protocol over one object (`KubernetesObject`) and its `Platform`."""

    def __init__(
        self,
        platform: Platform,
        obj: KubernetesObject,
        *,
        settle_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.platform = platform
        self.object = obj
        self.settle_timeout = settle_timeout
        self._clock = clock
        self._sleep = sleep

    @property
    def where(self) -> str:
        return self.object.where

    def close(self) -> None:
        """Nothing to release: the client's connection pool goes with it."""

    # --- the Router protocol ----------------------------------------------------------

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        problems = self.platform.problems(route)
        if problems:  # refused before any write
            raise RouteNotSupportedError(f"{self.where}: {problems[0][1]}")
        current = self._in_force()
        self._refuse_expired(current, lease)
        expires_at = None if ttl is None else self._clock() + ttl

        def decide(obj: KubeObject) -> Patch:
            mark = LeaseMark.of(obj, self.where)
            check_lease(mark.lease if mark else None, lease, self.where)
            places = self.platform.places(route, RouteRecord.of(obj, self.where))
            return _merged(
                self.platform.spec_patch(obj, route, places),
                marks_patch(LeaseMark(lease, expires_at), RouteRecord(route, places)),
            )

        return self._applied(self._settle(self.object.update(decide, seen=current)))

    def renew(self, lease: Lease, ttl: float) -> Applied:
        current = self._in_force()
        self._refuse_expired(current, lease)

        def decide(obj: KubeObject) -> Patch | None:
            mark = LeaseMark.of(obj, self.where)
            check_renewable(mark.lease if mark else None, lease, self.where)
            assert mark is not None  # check_renewable refuses a missing lease
            if mark.expires_at is None:
                return None  # held with no expiry: nothing to extend
            return marks_patch(LeaseMark(lease, self._clock() + ttl), None)

        return self._applied(self.object.update(decide, seen=current))

    def read(self) -> Applied:
        return self._applied(self._in_force())

    def rollback(self, lease: Lease | None) -> Applied:
        """Baseline 100 %, no mirror, under an epoch above every one seen, in one write. A
        rollback must win over any controller: a write that meets a newer lease (409, then
        a read) is decided again above it."""

        def decide(obj: KubeObject) -> Patch:
            mark = LeaseMark.of(obj, self.where)
            held = mark.lease if mark else None
            epoch = max(held.epoch if held else 0, lease.epoch if lease else 0) + 1
            rollout_id = (lease or held or Lease(ROLLBACK_ROLLOUT_ID, 0)).rollout_id
            return self._rolled_back_patch(obj, Lease(rollout_id, epoch), after_expiry=False)

        return self._applied(self._settle(self.object.update(decide)))

    # --- plumbing -------------------------------------------------------------------------

    def _rolled_back_patch(self, obj: KubeObject, lease: Lease, *, after_expiry: bool) -> Patch:
        record = RouteRecord.of(obj, self.where)
        route = (record.route if record else self.platform.route_of(obj, None)).rolled_back()
        places = record.places if record else self.platform.places(route, None)
        return _merged(
            self.platform.spec_patch(obj, route, places),
            marks_patch(LeaseMark(lease, None, after_expiry), RouteRecord(route, places)),
        )

    def _in_force(self) -> KubeObject:
        """The object, after ending a lease whose expiry has passed: the baseline answers
        everything under the next epoch, as the gateway does on its own at expiry."""
        obj = self.object.read()
        mark = LeaseMark.of(obj, self.where)
        if not self._expired(mark):
            return obj
        assert mark is not None

        def decide(current: KubeObject) -> Patch | None:
            now = LeaseMark.of(current, self.where)
            if now != mark:
                return None  # another writer got there first: its write stands
            following = Lease(mark.lease.rollout_id, mark.lease.epoch + 1)
            return self._rolled_back_patch(current, following, after_expiry=True)

        return self._settle(self.object.update(decide, seen=obj))

    def _expired(self, mark: LeaseMark | None) -> bool:
        return mark is not None and mark.expires_at is not None and self._clock() >= mark.expires_at

    def _refuse_expired(self, obj: KubeObject, lease: Lease) -> None:
        """LeaseExpiredError when `lease` is the one whose expiry ended it."""
        mark = LeaseMark.of(obj, self.where)
        if mark is not None:
            refuse_if_expired(mark.lease, mark.after_expiry, lease, self.where)

    def _settle(self, obj: KubeObject) -> KubeObject:
        """The object once its status shows the write in force (read again until then)."""
        deadline = self._clock() + self.settle_timeout
        while not self.platform.settled(obj):
            if self._clock() >= deadline:
                raise RouteVerificationError(
                    f"{self.where}: its status still does not show gray's write after "
                    f"{self.settle_timeout:g} s (generation "
                    f"{(obj.get('metadata') or {}).get('generation')}); the write stands, "
                    "its traffic is unverified"
                )
            self._sleep(SETTLE_POLL_SECONDS)
            obj = self.object.read()
        return obj

    def _applied(self, obj: KubeObject) -> Applied:
        mark = LeaseMark.of(obj, self.where)
        route = self.platform.route_of(obj, RouteRecord.of(obj, self.where))
        return Applied(route, mark.lease if mark else None)


def percent_problem(share: float, what: str, platform: str) -> str | None:
    """Why `share` cannot be written as the whole percent a platform's integer field takes
    (None: it can). A share between two percents is refused, not rounded: a rounded 0.4 %
    sends no traffic, and the stage's expected requests would silently change."""
    if abs(share * 100 - round(share * 100)) <= 1e-6:
        return None
    below = int(share * 100)
    nearest = f"{below}% or {below + 1}%" if below else "1%"
    return f"{platform} takes the {what} in whole percent; {share:.2%} is not one (use {nearest})"


def _merged(spec: Patch, marks: Patch) -> Patch:
    return {**spec, **marks}
