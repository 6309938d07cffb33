"""Several gateway replicas (behind a load balancer) driven as one `Router`.

A plan that names one replica's address behind a load balancer writes the route
to whichever replica answers and reads it back from whichever answers next: the
split is then wrong without any error. A fleet instead talks to every replica
by its own address, in parallel, under one lease:

- a write goes to every replica and is read back from each; it counts only when
  all agree. A replica that refuses it (409) or stays unreachable past the
  router's timeout makes it a failure: every reachable replica is rolled back to
  the baseline, and the error names the replica;
- a read answers the route under the newest lease any replica holds, so a
  takeover of one replica (an operator's rollback) is seen at once;
- `repair` rewrites, under the lease in force, a replica that came back from a
  restart with an older route or none, and rolls back the replicas still under it
  once another replica was rolled back under a newer lease; the runner calls it at
  every look, before the counters are read, and journals each repair;
- a rollback writes every replica and raises `ReplicaWriteError` (naming each
  replica and its answer) when any of them could not be written; the written
  ones stay rolled back.

Threads rather than an executor: `gray rollback`'s fast path imports this module,
and plain threads cost nothing to import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gray.controller.errors import (
    EndpointUnreachableError,
    LeaseConflictError,
    LeaseExpiredError,
    ReplicaWriteError,
    RouterError,
)
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.types import Applied, Lease, RouteSpec

T = TypeVar("T")
# How long a fleet operation pauses before asking an unreachable replica again.
UNREACHABLE_PAUSE_SECONDS = 0.25


@dataclass(frozen=True)
class ReplicaOutcome:
    """What one replica answered to one fleet operation."""

    url: str
    applied: Applied | None = None
    error: RouterError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.url}: NOT WRITTEN: {self.error.message}"
        if self.applied is None:
            return f"{self.url}: written"
        return f"{self.url}: {describe_applied(self.applied)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "route": self.applied.to_dict() if self.applied else None,
            "error": self.error.message if self.error else None,
        }


@dataclass(frozen=True)
class Repair:
    """A replica found without the fleet's route and the route written back to it, or (with
    `followed_takeover`) a replica rolled back because another replica was rolled back under
    a newer lease, so that no replica keeps the candidate's traffic the others dropped."""

    url: str
    found: Applied
    written: Applied
    followed_takeover: bool = False

    def describe(self) -> str:
        if self.followed_takeover:
            return (
                f"replica {self.url} held {describe_applied(self.found)} while another replica "
                f"was rolled back under a newer lease; rolled back to "
                f"{describe_applied(self.written)}"
            )
        return (
            f"replica {self.url} held {describe_applied(self.found)} (restarted with an older "
            f"route, or none); rewritten to {describe_applied(self.written)}"
        )

    def to_dict(self) -> dict[str, Any]:
        found, written = self.found.to_dict(), self.written.to_dict()
        return {
            "replica": self.url,
            "found": found,
            "written": written,
            "followed_takeover": self.followed_takeover,
        }


@dataclass(frozen=True)
class RepairReport:
    repaired: tuple[Repair, ...] = ()
    problems: tuple[str, ...] = ()  # replicas that could not be read or rewritten, said


@dataclass(frozen=True)
class _Written:
    """The route this fleet last put in force everywhere, to repair a replica with."""

    route: RouteSpec
    lease: Lease
    ttl: float | None


class GatewayFleet:
    """Drives every gateway replica of `replicas` as one endpoint (see the module's text)."""

    def __init__(
        self,
        replicas: Sequence[GatewayRouter],
        timeout: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not replicas:
            raise ValueError("a gateway fleet needs at least one replica")
        self.replicas = tuple(replicas)
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._written: _Written | None = None
        self.outcomes: tuple[ReplicaOutcome, ...] = ()  # of the last rollback, per replica

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(replica.url for replica in self.replicas)

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()

    def __enter__(self) -> GatewayFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the Router protocol ----------------------------------------------------------

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        written = self._each(lambda r: self._patiently(lambda: r.apply(route, lease, ttl)))
        checked = [
            self._read_back(replica, outcome, route, lease)
            for replica, outcome in zip(self.replicas, written, strict=True)
        ]
        failed = [outcome for outcome in checked if not outcome.ok]
        if failed:
            raise self._undo_partial_write(failed, lease)
        self._written = _Written(route, lease, ttl)
        return _newest(checked, self._written)

    def read(self) -> Applied:
        outcomes = self._each(lambda r: r.read())
        answered = [outcome for outcome in outcomes if outcome.applied is not None]
        if not answered:
            raise EndpointUnreachableError(
                "no gateway replica answered: " + "; ".join(o.describe() for o in outcomes)
            )
        return _newest(answered, self._written)

    def renew(self, lease: Lease, ttl: float) -> Applied:
        """Renew on every replica. One that refuses because it lost the route is left to
        `repair`, which follows at the same look; an expiry anywhere is raised."""
        outcomes = self._each(lambda r: r.renew(lease, ttl))
        for outcome in outcomes:
            if isinstance(outcome.error, LeaseExpiredError):
                raise outcome.error
        renewed = [outcome for outcome in outcomes if outcome.ok]
        if not renewed:
            text = "no gateway replica renewed the lease: " + "; ".join(
                o.describe() for o in outcomes
            )
            if all(isinstance(o.error, LeaseConflictError) for o in outcomes):
                raise LeaseConflictError(text)  # a newer lease holds every replica
            raise RouterError(text)
        if self._written is not None and self._written.lease == lease:
            self._written = _Written(self._written.route, lease, ttl)
        return _newest(renewed, self._written)

    def rollback(self, lease: Lease | None) -> Applied:
        outcomes = self._each(lambda r: self._patiently(lambda: r.rollback(lease)))
        self.outcomes = tuple(outcomes)
        written = [outcome for outcome in outcomes if outcome.ok]
        if len(written) < len(outcomes):
            raise ReplicaWriteError(
                f"the rollback reached {len(written)} of {len(outcomes)} gateway replicas (the "
                "written ones stay rolled back): " + "; ".join(o.describe() for o in outcomes)
            )
        return _newest(written, None)

    def ensure_loaded(self, version: str) -> str | None:
        digests: dict[str, str | None] = {}
        errors: list[str] = []

        def load(replica: GatewayRouter) -> None:
            digests[replica.url] = replica.ensure_loaded(version)

        for outcome in self._each(lambda r: load(r)):
            if outcome.error is not None:
                errors.append(f"{outcome.url}: {outcome.error.message}")
        if errors:
            detail = "; ".join(errors)
            raise RouterError(f"version {version} is not loaded on every replica: {detail}")
        if len(set(digests.values())) > 1:
            found = "; ".join(f"{url}: {sha or 'none'}" for url, sha in digests.items())
            raise RouterError(
                f"the gateway replicas apply different preprocessors to version {version}: {found}"
            )
        return next(iter(digests.values()))

    # --- repair, asked by the runner at every look ---------------------------------------

    def repair(self, lease: Lease, ttl: float | None) -> RepairReport:
        """Bring every replica back in line with the fleet's route under `lease`.

        A replica holding an older lease than the fleet's route (a restart from an older
        saved route), none (a restart with an empty state), or the fleet's lease over
        another route is rewritten. When a replica was rolled back under a newer lease (an
        operator's rollback that missed a replica, or a replica's own lease expiry), the
        replicas still under `lease` are rolled back too: the controller stops at the
        read that follows, and must not leave candidate traffic behind on them. A newer
        lease over candidate traffic (a resumed controller) is left alone. A replica that
        does not answer is reported."""
        written = self._written
        if written is None or written.lease != lease:
            return RepairReport()
        outcomes = self._each(lambda r: r.read())
        problems = [
            f"could not read the route of replica {o.describe()}"
            for o in outcomes
            if o.applied is None
        ]
        if any(o.applied is not None and _rolled_back_over(o.applied, lease) for o in outcomes):
            return self._follow_takeover(outcomes, lease, problems)
        repaired: list[Repair] = []
        for replica, outcome in zip(self.replicas, outcomes, strict=True):
            if outcome.applied is not None and _lost_route(outcome.applied, written):
                try:
                    replica.apply(written.route, lease, ttl)
                    repaired.append(Repair(replica.url, outcome.applied, replica.read()))
                except RouterError as error:
                    problems.append(f"could not repair replica {replica.url}: {error.message}")
        return RepairReport(tuple(repaired), tuple(problems))

    def _follow_takeover(
        self, outcomes: list[ReplicaOutcome], lease: Lease, problems: list[str]
    ) -> RepairReport:
        repaired: list[Repair] = []
        for replica, outcome in zip(self.replicas, outcomes, strict=True):
            found = outcome.applied
            if found is None or found.lease != lease or not _sends_to_candidate(found):
                continue
            try:
                rolled = replica.rollback(lease)
            except RouterError as error:
                problems.append(f"could not roll back replica {replica.url}: {error.message}")
                continue
            repaired.append(Repair(replica.url, found, rolled, followed_takeover=True))
        return RepairReport(tuple(repaired), tuple(problems))

    # --- plumbing -------------------------------------------------------------------------

    def _each(self, call: Callable[[GatewayRouter], Applied | None]) -> list[ReplicaOutcome]:
        """`call` on every replica at once; each replica's answer or RouterError, in order."""
        outcomes: list[ReplicaOutcome | None] = [None] * len(self.replicas)

        def run(index: int, replica: GatewayRouter) -> None:
            try:
                outcomes[index] = ReplicaOutcome(replica.url, applied=call(replica))
            except RouterError as error:
                outcomes[index] = ReplicaOutcome(replica.url, error=error)

        threads = [
            threading.Thread(target=run, args=(index, replica), daemon=True)
            for index, replica in enumerate(self.replicas)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [outcome for outcome in outcomes if outcome is not None]

    def _patiently(self, call: Callable[[], T]) -> T:
        """`call`, asked again while the replica is unreachable, up to the router's timeout."""
        deadline = self._clock() + self._timeout
        while True:
            try:
                return call()
            except EndpointUnreachableError:
                left = deadline - self._clock()
                if left <= 0:
                    raise
                self._sleep(min(UNREACHABLE_PAUSE_SECONDS, left))

    def _read_back(
        self, replica: GatewayRouter, outcome: ReplicaOutcome, route: RouteSpec, lease: Lease
    ) -> ReplicaOutcome:
        if not outcome.ok:
            return outcome
        try:
            seen = replica.read()
        except RouterError as error:
            return ReplicaOutcome(replica.url, error=error)
        if seen.route.same_split(route) and seen.lease == lease:
            return ReplicaOutcome(replica.url, applied=seen)
        return ReplicaOutcome(
            replica.url,
            error=RouterError(f"reads back {describe_applied(seen)} after the write"),
        )

    def _undo_partial_write(self, failed: list[ReplicaOutcome], lease: Lease) -> RouterError:
        """Roll every reachable replica back to the baseline; the error that says so.

        A replica that took a promotion's route (the candidate as its baseline) is first
        put back on the baseline the fleet served before: a rollback alone keeps a
        route's baseline, and would leave that replica serving the candidate to all. A
        replica that refused the write for a newer lease is left to that lease: it took
        nothing, and a rollback under the refused lease would take the lease from its
        holder (an operator's rollback) with a still newer epoch."""
        before = self._written.route.rolled_back() if self._written is not None else None
        fenced = {o.url for o in failed if isinstance(o.error, LeaseConflictError)}

        def undo(replica: GatewayRouter) -> Applied | None:
            if replica.url in fenced:
                return None
            if before is not None:
                seen = replica.read()
                if seen.lease == lease and seen.route.baseline != before.baseline:
                    replica.apply(before, lease)
            return replica.rollback(lease)

        rolled = [o for o in self._each(undo) if o.url not in fenced]
        self.outcomes = tuple(rolled)
        back = [o.url for o in rolled if o.ok]
        not_back = [o.describe() for o in rolled if not o.ok]
        text = (
            "the route was not written to every gateway replica: "
            + "; ".join(f"replica {o.url} refused it or did not answer ({_why(o)})" for o in failed)
            + f"; rolled back to the baseline: {', '.join(back) or 'none'}"
            + (f"; not rolled back: {'; '.join(not_back)}" if not_back else "")
        )
        if any(isinstance(o.error, LeaseConflictError) for o in failed):
            return LeaseConflictError(text)  # a newer lease (an operator's rollback) somewhere
        return ReplicaWriteError(text)


def describe_applied(applied: Applied) -> str:
    route, lease = applied.route, applied.lease
    split = f"v{route.baseline}"
    if route.candidate is not None and (route.weight > 0 or route.mirror > 0):
        split += f" / v{route.candidate} {route.weight:.0%}"
        split += f" mirror {route.mirror:.0%}" if route.mirror else ""
    holder = f"{lease.rollout_id!r} epoch {lease.epoch}" if lease else "no lease"
    return f"{split} under {holder}"


def _why(outcome: ReplicaOutcome) -> str:
    return outcome.error.message if outcome.error else "no answer"


def _sends_to_candidate(applied: Applied) -> bool:
    route = applied.route
    return route.candidate is not None and (route.weight > 0 or route.mirror > 0)


def _rolled_back_over(seen: Applied, lease: Lease) -> bool:
    """Whether `seen` is a baseline-only route under a lease newer than `lease`."""
    held = seen.lease
    if held is None or _sends_to_candidate(seen):
        return False
    return held.epoch > lease.epoch or (
        held.epoch == lease.epoch and held.rollout_id != lease.rollout_id
    )


def _lost_route(seen: Applied, written: _Written) -> bool:
    lease = seen.lease
    if lease is None or lease.epoch < written.lease.epoch:
        return True
    return lease == written.lease and not seen.route.same_split(written.route)


def _newest(outcomes: Sequence[ReplicaOutcome], written: _Written | None) -> Applied:
    """The route under the newest lease; among equals, the one the fleet wrote if any."""
    answered = [o.applied for o in outcomes if o.applied is not None]
    assert answered, "callers pass at least one answer"

    def rank(applied: Applied) -> tuple[int, bool]:
        epoch = applied.lease.epoch if applied.lease else -1
        ours = written is not None and applied.route.same_split(written.route)
        return epoch, ours

    return max(answered, key=rank)


def gateway_endpoint(
    urls: Sequence[str], token: str | None, timeout: float
) -> GatewayRouter | GatewayFleet:
    """One gateway's adapter, or a fleet's when there are several replicas."""
    if len(urls) == 1:
        return GatewayRouter(urls[0], token, timeout=timeout)
    # One retry inside each replica: the fleet waits for an unreachable replica itself
    # where it must (writes), and a look must not stall seconds on a replica that is down.
    replicas = [GatewayRouter(url, token, timeout=timeout, retries=1) for url in urls]
    return GatewayFleet(replicas, timeout)
