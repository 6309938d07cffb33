"""The route in force, fenced by lease epochs and kept on disk across restarts.

A route that sends traffic to the candidate is written either with a time-to-live
(`ttl`: the writer must renew it before it runs out, or the baseline answers
everything again by itself) or with `hold` (kept with no expiry, on purpose). The
expiry time is kept on disk too, so a gateway restarted after it expires the route at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gray.controller.errors import GatewayError
from gray.controller.types import Applied, Lease, RouteSpec
from gray.gateway.routing import CompiledRoute

ROLLBACK_ROLLOUT_ID = "rollback"

log = logging.getLogger("gray.gateway")


@dataclass(frozen=True)
class LeaseTerms:
    """How long the route in force keeps its candidate traffic without a renewal."""

    expires_at: float | None = None  # unix seconds; None: no expiry
    ttl: float | None = None  # the seconds each renewal grants
    hold: bool = False  # candidate traffic kept with no expiry, on purpose

    def to_dict(self) -> dict[str, Any]:
        return {"expires_at": self.expires_at, "ttl": self.ttl, "hold": self.hold}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LeaseTerms:
        if not data:
            return cls()
        expires_at, ttl = data.get("expires_at"), data.get("ttl")
        return cls(
            expires_at=None if expires_at is None else float(expires_at),
            ttl=None if ttl is None else float(ttl),
            hold=bool(data.get("hold", False)),
        )


@dataclass(frozen=True)
class Expiry:
    """A lease that ran out: whose, when, and the route it had in force."""

    lease: Lease
    at: float
    route: RouteSpec

    def to_dict(self) -> dict[str, Any]:
        return {"lease": self.lease.to_dict(), "at": self.at, "route": self.route.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Expiry | None:
        if not data:
            return None
        return cls(
            lease=Lease.from_dict(data["lease"]),
            at=float(data["at"]),
            route=RouteSpec.from_dict(data["route"]),
        )


class TermsRequired(ValueError):
    """A route that sends traffic to the candidate came with neither a ttl nor hold."""


def sends_to_candidate(route: RouteSpec) -> bool:
    return route.candidate is not None and (route.weight > 0 or route.mirror > 0)


class LeaseRefused(Exception):
    """A write carried an older epoch, or the same epoch under another rollout id."""

    def __init__(self, message: str, current: Lease | None, expired: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.current = current
        self.expired = expired  # the offered lease is one that ran out unrenewed


def check_lease(current: Lease | None, offered: Lease) -> None:
    if current is None:
        return
    if offered.epoch < current.epoch:
        raise LeaseRefused(
            f"epoch {offered.epoch} is older than epoch {current.epoch} held by "
            f"rollout {current.rollout_id!r}",
            current,
        )
    if offered.epoch == current.epoch and offered.rollout_id != current.rollout_id:
        raise LeaseRefused(
            f"epoch {offered.epoch} is held by rollout {current.rollout_id!r}, "
            f"not {offered.rollout_id!r}; take over with a higher epoch",
            current,
        )


class RouteStore:
    """Holds the route and lease; every change is written to disk before it takes effect."""

    def __init__(
        self,
        path: Path,
        model_name: str,
        initial: Applied,
        terms: LeaseTerms | None = None,
        last_expiry: Expiry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._model_name = model_name
        self._lock = threading.Lock()
        self._applied = initial
        self._terms = terms or LeaseTerms()
        self._last_expiry = last_expiry
        self._clock = clock
        self.expiries = 0  # leases expired since this process started
        self._compiled = CompiledRoute.compile(initial.route)

    @classmethod
    def restore(cls, path: Path, model_name: str) -> RouteStore | None:
        """The store saved at `path`, or None when no route was ever written there."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            applied = Applied.from_dict(data)
            terms = LeaseTerms.from_dict(data.get("lease_terms"))
            last_expiry = Expiry.from_dict(data.get("last_expiry"))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GatewayError(f"cannot read the saved route {path}: {error}") from None
        saved_model = data.get("model")
        if saved_model != model_name:
            raise GatewayError(
                f"the saved route {path} belongs to model {saved_model!r}, not {model_name!r}; "
                "use another --state-dir"
            )
        return cls(path, model_name, applied, terms, last_expiry)

    @property
    def applied(self) -> Applied:
        return self._applied

    @property
    def compiled(self) -> CompiledRoute:
        return self._compiled

    @property
    def terms(self) -> LeaseTerms:
        return self._terms

    def status(self) -> dict[str, Any]:
        """The lease's terms as the admin API shows them."""
        with self._lock:
            terms, expiry = self._terms, self._last_expiry
        left = None if terms.expires_at is None else max(terms.expires_at - self._clock(), 0.0)
        return {
            "lease_expires_at": terms.expires_at,
            "lease_seconds_left": left,
            "lease_ttl": terms.ttl,
            "hold": terms.hold,
            "last_expiry": expiry.to_dict() if expiry else None,
        }

    def put(
        self, route: RouteSpec, lease: Lease, ttl: float | None = None, hold: bool = False
    ) -> Applied:
        """Put `route` in force under `lease`; raises LeaseRefused, or TermsRequired when a
        route that sends the candidate traffic comes with neither `ttl` nor `hold`."""
        with self._lock:
            check_lease(self._applied.lease, lease)
            terms = self.terms_for(route, ttl, hold)
            return self._commit(Applied(route=route, lease=lease), terms)

    def terms_for(self, route: RouteSpec, ttl: float | None, hold: bool) -> LeaseTerms:
        """The terms a write gets; raises TermsRequired (see `put`)."""
        if not sends_to_candidate(route):
            return LeaseTerms()
        if hold:
            return LeaseTerms(hold=True)
        if ttl is None:
            raise TermsRequired(
                "a route that sends traffic to the candidate needs a lease ttl (seconds; the "
                'writer renews it) or "hold": true (kept with no expiry)'
            )
        return LeaseTerms(expires_at=self._clock() + ttl, ttl=ttl)

    def renew(self, lease: Lease, ttl: float) -> Applied:
        """Extend the route's expiry by `ttl` from now; only the lease in force may."""
        with self._lock:
            current = self._applied.lease
            if current != lease:
                expiry = self._last_expiry
                expired = expiry is not None and expiry.lease == lease
                if expiry is not None and expired:
                    message = (
                        f"the lease of rollout {lease.rollout_id!r} epoch {lease.epoch} expired "
                        f"at {time.strftime('%H:%M:%S', time.gmtime(expiry.at))} UTC, unrenewed;"
                        f" the baseline answers everything since"
                    )
                else:
                    message = (
                        f"lease {lease.rollout_id!r} epoch {lease.epoch} is not the one in force "
                        f"({_describe(current)}); nothing to renew"
                    )
                raise LeaseRefused(message, current, expired)
            if self._terms.expires_at is not None:
                # Only the file's expiry changes: a crash loses at most this renewal.
                self._commit(self._applied, LeaseTerms(self._clock() + ttl, ttl))
            return self._applied

    def expire_if_due(self) -> Expiry | None:
        """Send everything back to the baseline when the lease ran out; the expiry, or None."""
        with self._lock:
            expires_at = self._terms.expires_at
            now = self._clock()
            if expires_at is None or now < expires_at or self._applied.lease is None:
                return None
            expiry = Expiry(lease=self._applied.lease, at=now, route=self._applied.route)
            ttl = self._terms.ttl or 0.0
            rolled = Applied(
                route=self._applied.route.rolled_back(),
                lease=Lease(expiry.lease.rollout_id, expiry.lease.epoch + 1),
            )
            self._last_expiry = expiry
            self._commit(rolled, LeaseTerms())
            self.expiries += 1
        log.warning(
            "the lease of rollout %s (epoch %d) expired: nobody renewed it within its ttl of "
            "%gs; version %s answers everything again (epoch %d)",
            expiry.lease.rollout_id,
            expiry.lease.epoch,
            ttl,
            rolled.route.baseline,
            rolled.lease.epoch if rolled.lease else 0,
        )
        return expiry

    def check(self, lease: Lease) -> None:
        with self._lock:
            check_lease(self._applied.lease, lease)

    def rollback(self, lease: Lease | None) -> Applied:
        """Baseline answers everything, under an epoch above every epoch seen so far."""
        with self._lock:
            current = self._applied.lease
            epoch = max(current.epoch if current else 0, lease.epoch if lease else 0) + 1
            if lease is not None:
                rollout_id = lease.rollout_id
            else:
                rollout_id = current.rollout_id if current else ROLLBACK_ROLLOUT_ID
            rolled = Applied(
                route=self._applied.route.rolled_back(),
                lease=Lease(rollout_id=rollout_id, epoch=epoch),
            )
            return self._commit(rolled, LeaseTerms())

    def _commit(self, applied: Applied, terms: LeaseTerms) -> Applied:
        compiled = CompiledRoute.compile(applied.route)
        self._write(applied, terms)
        # Swap only after the file is durable, so a crash never leaves memory ahead of disk.
        self._applied = applied
        self._terms = terms
        self._compiled = compiled
        return applied

    def _write(self, applied: Applied, terms: LeaseTerms) -> None:
        payload = {
            "model": self._model_name,
            "written_at": time.time(),
            **applied.to_dict(),
            "lease_terms": terms.to_dict(),
            "last_expiry": self._last_expiry.to_dict() if self._last_expiry else None,
        }
        write_atomically(self._path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _describe(lease: Lease | None) -> str:
    return "none" if lease is None else f"{lease.rollout_id!r} epoch {lease.epoch}"


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
