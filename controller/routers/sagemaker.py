"""The Router for an Amazon SageMaker real-time endpoint: the baseline and the candidate
are two production variants, split by their weights (`UpdateEndpointWeightsAndCapacities`)
and read back from `DescribeEndpoint`'s `CurrentWeight`.

Weights. Every production variant of the endpoint gets a weight in each write: the
baseline's variant 1 − w, the candidate's w, any other 0, so a version left on the
endpoint takes no traffic. SageMaker sets the endpoint `Updating` while it applies
them; gray waits (bounded, `update_timeout`) for `InService` before a write (SageMaker
refuses to update an endpoint that is updating) and after it, then reads back.

Fencing. SageMaker has no compare-and-set. gray keeps the lease (rollout id, epoch,
expiry, the route) in the endpoint's tags and every write reads them first: a writer
whose epoch is older than the one in force refuses itself before touching a weight.
What read-before-write cannot close is a writer that passed its check just before a
newer one (a rollback) wrote its tags: its weights can land after the rollback's. So
after its weights every writer reads the tags again, and one that finds a newer lease
puts back that lease's weights and refuses; a rollback reads the weights back once the
endpoint is in service and writes them again if a stale write landed after its own.
The candidate can then answer for the length of one weight update (seconds to a
couple of minutes on SageMaker) and for longer only when the stale writer stops
between its write and its check; the next gray command that reads the endpoint sees
weights that disagree with the tags and says so, and `gray rollback` writes them again.

Expiry. SageMaker keeps weights until told otherwise: it cannot send traffic back to
the baseline when a controller stops. The tags keep the lease's expiry, and the first
gray call after it (a late renewal, a write, a read) rolls the endpoint back under
the next epoch, as the gateway would have done on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gray.controller.errors import (
    LeaseConflictError,
    RouterError,
    RouteVerificationError,
    VersionNotLoadedError,
)
from gray.controller.routers.base import (
    check_lease,
    check_renewable,
    describe_lease,
    refuse_if_expired,
)
from gray.controller.routers.sagemaker_api import EndpointApi, current_weights, variant_names
from gray.controller.routers.sagemaker_record import LeaseTags, VariantNames, weights_for
from gray.controller.types import Applied, Lease, RouteSpec

DEFAULT_UPDATE_TIMEOUT_SECONDS = 600.0
ROLLBACK_ATTEMPTS = 5
ROLLBACK_ROLLOUT_ID = "rollback"  # the lease's rollout id when a rollback knows none
WEIGHT_TOLERANCE = 1e-6


class SageMakerRouter:
    """Drives one endpoint through a boto3 SageMaker client (`client`); `sleep`,
    `monotonic` (for the bounded waits) and `clock` (unix time, for lease expiry) let
    tests run without waiting."""

    def __init__(
        self,
        client: Any,
        endpoint: str,
        variants: VariantNames,
        *,
        update_timeout: float = DEFAULT_UPDATE_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = EndpointApi(client, endpoint, update_timeout, sleep=sleep, monotonic=monotonic)
        self.endpoint = endpoint
        self.variants = variants
        self._clock = clock

    @property
    def where(self) -> str:
        return self.api.where

    def close(self) -> None:
        """Nothing to release: boto3 clients pool their own connections."""

    # --- the Router protocol ----------------------------------------------------------

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        weights = weights_for(route, self.variants)  # refused before any write
        self._deployed(weights, self.api.describe())  # so is a version with no variant
        current = self._record_in_force()
        self._refuse_expired(current, lease)
        check_lease(current.lease if current else None, lease, self.where)
        expires_at = None if ttl is None else self._clock() + ttl
        self._write_tags(LeaseTags(lease, route, expires_at))
        self._set_weights(weights)
        self._fence_after_write(lease)
        return self.read()

    def renew(self, lease: Lease, ttl: float) -> Applied:
        current = self._record_in_force()
        self._refuse_expired(current, lease)
        check_renewable(current.lease if current else None, lease, self.where)
        assert current is not None  # check_renewable refuses a missing lease
        if current.expires_at is not None:
            self._write_tags(LeaseTags(current.lease, current.route, self._clock() + ttl))
        # The weights are untouched: the route in force is the one the lease wrote (the look
        # that follows reads the weights back).
        return Applied(current.route, current.lease)

    def read(self) -> Applied:
        """The lease in force and its route; when the variants' weights are not the ones
        the route maps to (someone else changed them), the split the weights make. With
        no lease record, the versions are read off the variants' names."""
        record = self._record_in_force()
        weights = current_weights(self.api.describe())
        if record is not None and _same(weights, weights_for(record.route, self.variants)):
            return Applied(record.route, record.lease)
        return Applied(self._route_of(weights, record), record.lease if record else None)

    def rollback(self, lease: Lease | None) -> Applied:
        """The baseline's variant at weight 1 and every other at 0, in one weight update,
        under an epoch above every one seen, written whatever lease is in force: a
        rollback must win over any controller, stale or not."""
        seen = lease
        for _ in range(ROLLBACK_ATTEMPTS):
            current = self._record()
            held = current.lease if current else None
            epoch = max(held.epoch if held else 0, seen.epoch if seen else 0) + 1
            rollout_id = (lease or held or Lease(ROLLBACK_ROLLOUT_ID, 0)).rollout_id
            route = (
                current.route.rolled_back()
                if current
                else self._route_of(current_weights(self.api.describe()), None).rolled_back()
            )
            mine = Lease(rollout_id, epoch)
            self._deployed(weights_for(route, self.variants), self.api.describe())
            self._write_tags(LeaseTags(mine, route, None))
            self._set_weights(weights_for(route, self.variants), verify=False)
            after = self._record()
            settled = current_weights(self.api.wait_in_service())
            if after is not None and after.lease == mine:
                if _same(settled, weights_for(route, self.variants)):
                    return self.read()
                seen = mine  # a stale write landed after ours: write again, above it
                continue
            seen = after.lease if after else mine
        raise RouterError(
            f"{self.where}: the rollback was overwritten {ROLLBACK_ATTEMPTS} times in a row by "
            "other writers; run `gray rollback` again, and stop the controller that keeps writing"
        )

    def ensure_loaded(self, version: str) -> str | None:
        """The version's production variant exists and is in service. gray does not create
        variants: deploy a version as the variant its name maps to (an endpoint config
        update) before the rollout. SageMaker cannot tell which preprocessor a variant's
        container applies, so this returns None."""
        name = self.variants.name_of(version)
        endpoint = self.api.wait_in_service()
        variant = next(
            (v for v in endpoint.get("ProductionVariants") or () if v.get("VariantName") == name),
            None,
        )
        if variant is None:
            names = ", ".join(variant_names(endpoint))
            raise VersionNotLoadedError(
                f"{self.where} has no production variant {name!r} for v{version} (it has "
                f"{names}); gray does not create variants: deploy v{version} as variant {name} "
                "with an endpoint config update first"
            )
        pending = [s.get("Status") for s in variant.get("VariantStatus") or ()]
        if pending:
            raise VersionNotLoadedError(
                f"{self.where}: variant {name!r} for v{version} is not in service yet "
                f"({', '.join(map(str, pending))})"
            )
        return None

    # --- plumbing -------------------------------------------------------------------------

    def _set_weights(self, weights: Mapping[str, float], *, verify: bool = True) -> None:
        """Every production variant's weight in one update (those `weights` leaves out at
        0), then wait for it and, with `verify`, check `CurrentWeight`."""
        names = self._deployed(weights, self.api.wait_in_service())
        self.api.update_weights({name: weights.get(name, 0.0) for name in names})
        actual = current_weights(self.api.wait_in_service())
        if verify and not _same(actual, weights):
            raise RouteVerificationError(
                f"{self.where} reports weights {_format(actual)} after gray wrote "
                f"{_format(weights)}"
            )

    def _deployed(self, weights: Mapping[str, float], endpoint: Mapping[str, Any]) -> list[str]:
        """The endpoint's production variants; VersionNotLoadedError when one `weights`
        names is not among them (gray does not create variants)."""
        names = variant_names(endpoint)
        missing = sorted(set(weights) - set(names))
        if missing:
            raise VersionNotLoadedError(
                f"{self.where} has no production variant {', '.join(map(repr, missing))} "
                f"(it has {', '.join(names)}); gray does not create variants"
            )
        return names

    def _route_of(self, weights: Mapping[str, float], record: LeaseTags | None) -> RouteSpec:
        """The split `weights` make, named in versions: the record's versions where it
        names the variants, else the versions the variants' names carry (the heaviest is
        the baseline)."""
        total = sum(weights.values())
        if record is not None:
            baseline, candidate = record.route.baseline, record.route.candidate
        else:
            named = sorted(
                ((w, self.variants.version_of(n)) for n, w in weights.items() if w > 0),
                key=lambda pair: -pair[0],
            )
            versions = [v or "" for _, v in named]
            baseline = versions[0] if versions else ""
            candidate = versions[1] if len(versions) > 1 else None
        share = 0.0
        if candidate is not None and total > 0:
            share = weights.get(self.variants.name_of(candidate), 0.0) / total
        return RouteSpec(baseline, candidate, weight=share)

    def _record(self) -> LeaseTags | None:
        return LeaseTags.from_tags(self.api.tags(), f"the tags of {self.where}")

    def _write_tags(self, record: LeaseTags) -> None:
        self.api.add_tags(record.to_tags())

    def _record_in_force(self) -> LeaseTags | None:
        """The record, after ending a lease whose expiry has passed: the baseline answers
        everything under the next epoch, as the gateway does on its own at expiry."""
        record = self._record()
        if record is None or record.expires_at is None or self._clock() < record.expires_at:
            return record
        expired = LeaseTags(
            Lease(record.lease.rollout_id, record.lease.epoch + 1),
            record.route.rolled_back(),
            None,
            after_expiry=True,
        )
        self._write_tags(expired)
        self._set_weights(weights_for(expired.route, self.variants))
        return expired

    def _refuse_expired(self, current: LeaseTags | None, lease: Lease) -> None:
        if current is not None:
            refuse_if_expired(current.lease, current.after_expiry, lease, self.where)

    def _fence_after_write(self, lease: Lease) -> None:
        """A newer lease that arrived while this writer wrote keeps its weights."""
        newer = self._record()
        if newer is None or newer.lease == lease:
            return
        self._set_weights(weights_for(newer.route, self.variants))
        raise LeaseConflictError(
            f"{self.where}: {describe_lease(newer.lease)} took over while gray wrote under "
            f"{describe_lease(lease)}; its weights are back in force"
        )


def _same(actual: Mapping[str, float], wanted: Mapping[str, float]) -> bool:
    """The same split: each wanted variant's share of the total, the rest at 0."""
    total_actual, total_wanted = sum(actual.values()), sum(wanted.values())
    if total_actual <= 0 or total_wanted <= 0:
        return False
    names = set(actual) | set(wanted)
    return all(
        abs(actual.get(n, 0.0) / total_actual - wanted.get(n, 0.0) / total_wanted)
        <= WEIGHT_TOLERANCE
        for n in names
    )


def _format(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={weight:g}" for name, weight in sorted(weights.items()))
