"""The Router for HAProxy, over its runtime API: one backend whose two servers serve the
baseline and the candidate, split by server weights.

Fencing. HAProxy has no compare-and-set, so gray keeps the lease in a map entry
(`haproxy_record.py`) and every write reads it first: a writer whose epoch is older
than the one in force refuses itself (LeaseConflictError) before touching a weight.
What read-before-write cannot close is a writer that passed its check just before a
newer one (a rollback) wrote: its weights can land after the rollback's. So after its
weights every writer reads the lease again; one that finds a newer lease puts back
that lease's weights and refuses, and a rollback that finds another lease than its
own writes itself again above it. The candidate can then answer for the few
milliseconds between the stale write and that repair, and for longer only when the
stale writer stops between the two (killed, frozen): the next gray command that reads
the backend (a controller's look, `gray rollback`) sees weights that disagree with
the record and says so, and `gray rollback` writes them again.

Expiry. HAProxy keeps weights until told otherwise; it cannot return traffic to the
baseline by itself when a controller stops. The record keeps the lease's expiry, and
the first gray call after it (a late renewal, a write, a read) rolls the backend back
under the next epoch, as the gateway would have done on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from gray.controller.errors import (
    LeaseConflictError,
    RouterError,
    RouteVerificationError,
    VersionNotLoadedError,
)
from gray.controller.routers.base import (
    bind_versions,
    check_lease,
    check_renewable,
    describe_lease,
    refuse_if_expired,
)
from gray.controller.routers.haproxy_record import MAX_WEIGHT, LeaseRecord, Weights, weights_for
from gray.controller.routers.haproxy_runtime import RuntimeAddress, RuntimeApi
from gray.controller.types import Applied, Lease, RouteSpec

DEFAULT_LEASE_MAP = "/etc/haproxy/gray-leases.map"
ROLLBACK_ROLLOUT_ID = "rollback"  # the lease's rollout id when a rollback knows none
ROLLBACK_ATTEMPTS = 5


class HaproxyRouter:
    """Drives one HAProxy backend; `servers` names its `baseline` and `candidate` servers."""

    def __init__(
        self,
        runtime_api: str,
        backend: str,
        servers: Mapping[str, str],
        *,
        lease_map: str = DEFAULT_LEASE_MAP,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = RuntimeApi(RuntimeAddress.parse(runtime_api), timeout)
        self.backend = backend
        self.roles = {"baseline": servers["baseline"], "candidate": servers["candidate"]}
        self.lease_map = lease_map
        self._clock = clock

    def close(self) -> None:
        """Nothing to release: every command opens and closes its own connection."""

    def __enter__(self) -> HaproxyRouter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"HAProxy backend {self.backend!r} at {self.api.address}"

    # --- the Router protocol ----------------------------------------------------------

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        weights = weights_for(route)  # refuses what HAProxy cannot carry, before any write
        current = self._record_in_force()
        self._refuse_expired(current, lease)
        check_lease(current.lease if current else None, lease, self.where)
        servers = self._bind(route, current)
        expires_at = None if ttl is None else self._clock() + ttl
        record = LeaseRecord(lease, route, expires_at, servers)
        self._write_record(record)
        self._set_weights(record, weights, previous=current)
        self._fence_after_write(lease)
        return self.read()

    def renew(self, lease: Lease, ttl: float) -> Applied:
        current = self._record_in_force()
        self._refuse_expired(current, lease)
        check_renewable(current.lease if current else None, lease, self.where)
        assert current is not None  # check_renewable refuses a missing lease
        if current.expires_at is not None:
            self._write_record(
                LeaseRecord(current.lease, current.route, self._clock() + ttl, current.servers)
            )
        return self.read()

    def read(self) -> Applied:
        """The lease in force and its route; when the servers' weights are not the ones the
        route maps to (someone else changed them), the split those weights make instead.
        A backend gray has not written since HAProxy started (no record) has no lease, and
        its versions are unknown: they read as "" (the split is the role servers')."""
        record = self._record_in_force()
        if record is None:
            share = self._weights_of(None).share
            return Applied(RouteSpec("", "" if share > 0 else None, weight=share), None)
        actual = self._weights_of(record)
        if actual == weights_for(record.route):
            return Applied(record.route, record.lease)
        seen = RouteSpec(record.route.baseline, record.route.candidate, weight=actual.share)
        return Applied(seen, record.lease)

    def rollback(self, lease: Lease | None) -> Applied:
        """Baseline 100 % under an epoch above every one seen, written unconditionally:
        a rollback must win over any controller, stale or not. A lease record another
        writer put in after this one's (both read the same epoch) is found after the
        write, and the rollback is written again above it."""
        seen = lease
        for _ in range(ROLLBACK_ATTEMPTS):
            current = self._record()
            held = current.lease if current else None
            epoch = max(held.epoch if held else 0, seen.epoch if seen else 0) + 1
            rollout_id = (lease or held or Lease(ROLLBACK_ROLLOUT_ID, 0)).rollout_id
            route = current.route.rolled_back() if current else RouteSpec(baseline="")
            mine = Lease(rollout_id, epoch)
            record = LeaseRecord(mine, route, None, current.servers if current else {})
            self._write_record(record)
            self._set_weights(record, Weights(MAX_WEIGHT, 0), previous=current)
            after = self._record()
            if after is not None and after.lease == mine:
                return self.read()
            seen = after.lease if after else mine
        raise RouterError(
            f"{self.where}: the rollback's lease was overwritten {ROLLBACK_ATTEMPTS} times "
            "in a row by other writers; the candidate's weight was 0 after each write"
        )

    def ensure_loaded(self, version: str) -> str | None:
        """HAProxy loads nothing: check that the server for `version` (both servers, before
        gray has bound versions to them) is up and not in maintenance. HAProxy cannot know
        which preprocessor a server applies, so this returns None."""
        record = self._record()
        bound = record.server_of(version) if record else None
        names = [bound] if bound else list(self.roles.values())
        states = self.api.servers_state(self.backend)
        for name in names:
            state = states.get(name)
            if state is None:
                raise VersionNotLoadedError(f"{self.where} has no server {name!r}")
            if not state.ready:
                raise VersionNotLoadedError(
                    f"{self.where}: server {name!r} for v{version} is not up (operational state "
                    f"{state.op_state}, admin state {state.admin_state})"
                )
        return None

    # --- plumbing -------------------------------------------------------------------------

    def _record(self) -> LeaseRecord | None:
        text = self.api.map_get(self.lease_map, self.backend)
        if text is None:
            return None
        return LeaseRecord.decode(text, f"map {self.lease_map} key {self.backend!r}")

    def _record_in_force(self) -> LeaseRecord | None:
        """The record, after ending a lease whose expiry has passed: the baseline answers
        everything under the next epoch, as the gateway does on its own at expiry."""
        record = self._record()
        if record is None or record.expires_at is None or self._clock() < record.expires_at:
            return record
        expired = LeaseRecord(
            Lease(record.lease.rollout_id, record.lease.epoch + 1),
            record.route.rolled_back(),
            None,
            record.servers,
            after_expiry=True,
        )
        self._write_record(expired)
        self._set_weights(expired, Weights(MAX_WEIGHT, 0), previous=record)
        return expired

    def _refuse_expired(self, current: LeaseRecord | None, lease: Lease) -> None:
        """LeaseExpiredError when `lease` is the one whose expiry ended it."""
        if current is not None:
            refuse_if_expired(current.lease, current.after_expiry, lease, self.where)

    def _bind(self, route: RouteSpec, current: LeaseRecord | None) -> dict[str, str]:
        """Which server serves which version: a version of the route keeps the server it
        was bound to (a promoted candidate stays on its server); a new one takes its role's
        server, or the other one when a version of the route already holds it."""
        bound = {served: name for name, served in (current.servers if current else {}).items()}
        return {name: version for version, name in bind_versions(route, bound, self.roles).items()}

    def _servers_for(self, record: LeaseRecord | None) -> tuple[str, str]:
        """The (baseline, candidate) servers of a record's route (no record: the roles')."""
        if record is None:
            return self.roles["baseline"], self.roles["candidate"]
        baseline = record.server_of(record.route.baseline) or self.roles["baseline"]
        candidate = (
            record.server_of(record.route.candidate) if record.route.candidate else None
        ) or next(name for name in self.roles.values() if name != baseline)
        return baseline, candidate

    def _set_weights(
        self, record: LeaseRecord, weights: Weights, previous: LeaseRecord | None
    ) -> None:
        """Write both servers' weights, then read them back (RouteVerificationError when they
        differ). Both weights go in one command line, so a lost connection changes both
        or neither; within it the candidate's share never overshoots: when it shrinks,
        the candidate's server comes first; when it grows, the baseline's."""
        baseline, candidate = self._servers_for(record)
        shrinking = previous is None or weights.share <= previous.route.weight
        order = [(candidate, weights.candidate), (baseline, weights.baseline)]
        # One command line: a write cut off midway changes both weights or neither.
        self.api.set_weights(self.backend, order if shrinking else order[::-1])
        actual = self._weights_of(record)
        if actual != weights:
            raise RouteVerificationError(
                f"{self.where} reports weights {baseline}={actual.baseline} "
                f"{candidate}={actual.candidate} after gray wrote {weights.baseline} and "
                f"{weights.candidate}"
            )

    def _weights_of(self, record: LeaseRecord | None) -> Weights:
        baseline, candidate = self._servers_for(record)
        states = self.api.servers_state(self.backend)
        missing = [name for name in (baseline, candidate) if name not in states]
        if missing:
            raise RouterError(f"{self.where} has no server {', '.join(map(repr, missing))}")
        return Weights(states[baseline].user_weight, states[candidate].user_weight)

    def _fence_after_write(self, lease: Lease) -> None:
        """A newer lease that arrived while this writer wrote keeps its weights."""
        newer = self._record()
        if newer is None or newer.lease == lease:
            return
        self._set_weights(newer, weights_for(newer.route), previous=None)
        raise LeaseConflictError(
            f"{self.where}: {describe_lease(newer.lease)} took over while gray wrote under "
            f"{describe_lease(lease)}; its weights are back in force"
        )

    def _write_record(self, record: LeaseRecord) -> None:
        self.api.map_put(self.lease_map, self.backend, record.encode())
