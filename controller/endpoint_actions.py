"""What the runner does to the endpoint and the registry for the loop's actions.

A stage's route is written under the rollout's lease and read back before the stage
counts; a rollback is one write, the registry's tag after it; a promotion moves the
alias first and the route after, and puts the aliases back if the endpoint refuses.
Every look renews the lease and, for a fleet, repairs replicas that lost the route.
A write refused by a newer lease is a lost lease (someone took the endpoint), any
other failure a lost endpoint: the loop decides what each means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gray.controller import loop
from gray.controller.clock import Clock
from gray.controller.errors import (
    AliasConflictError,
    LeaseConflictError,
    LeaseExpiredError,
    MetricsError,
    RegistryError,
    RouterError,
    RouteVerificationError,
)
from gray.controller.journal import Event, EventKind, Journal
from gray.controller.metrics.base import MetricsSource
from gray.controller.plan.models import Plan
from gray.controller.routers.base import FleetRouter, Router
from gray.controller.state import RolloutState
from gray.controller.types import Applied, Lease, RouteSpec, Snapshot

ORIGIN_SNAPSHOT_TRIES = 3
# Without router.lease_ttl, candidate traffic outlives a silent controller by this many
# intervals, and never by less than the floor.
LEASE_TTL_INTERVALS = 3
LEASE_TTL_FLOOR_SECONDS = 30.0
# How long a controller that lost its lease to a rollback waits for the operator's record.
OPERATOR_RECORD_POLLS = 20
OPERATOR_RECORD_POLL_SECONDS = 0.1


def lease_ttl(plan: Plan) -> float:
    """Seconds the endpoint keeps candidate traffic after the controller's last renewal."""
    if plan.router.lease_ttl is not None:
        return plan.router.lease_ttl
    return max(LEASE_TTL_INTERVALS * plan.interval, LEASE_TTL_FLOOR_SECONDS)


class Promoter(Protocol):
    """The registry operations a running rollout needs: the promotion that ends it (and its
    undoing when the endpoint refuses it), the rolled-back tag, and the alias checks."""

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: Any,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[Any]: ...
    def alias_points_at(self, name: str, alias: str, version: str) -> bool: ...
    def drift_from(self, model: Any, baseline: str, candidate: str) -> list[str]: ...
    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None: ...
    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        expected_from: str | None,
        rollout_id: str | None,
        reason: str,
    ) -> Any: ...


class EndpointActions:
    """The endpoint and registry I/O behind `ApplyStage`, `Rollback` and `Promote`, and the
    lease upkeep of every look; each returns the observation the loop is fed."""

    def __init__(
        self,
        plan: Plan,
        router: Router,
        metrics: MetricsSource,
        registry: Promoter | None,
        journal: Journal,
        clock: Clock,
        *,
        on_event: Callable[[Event], None],
        on_warning: Callable[[str], None],
        after_write: Callable[[str, Callable[[], None]], None],
        hold_traffic: bool = False,
    ) -> None:
        self.plan = plan
        self.router = router
        self.metrics = metrics
        self.registry = registry
        self.journal = journal
        self.clock = clock
        self.on_event = on_event
        self.on_warning = on_warning
        self.after_write = after_write
        self.hold_traffic = hold_traffic  # every stage's traffic kept with no lease expiry

    def lease(self, state: RolloutState) -> Lease:
        return Lease(state.rollout_id, state.epoch)

    def lease_ttl(self, state: RolloutState) -> float | None:
        """The stage's lease time-to-live; None when its traffic is held with no expiry."""
        if self.hold_traffic or self.plan.stages[state.stage].hold:
            return None
        return lease_ttl(self.plan)

    def renew_lease(self, state: RolloutState) -> str | None:
        """Every look renews the lease; the route read that follows shows who holds it.
        Returns why the lease is gone when it expired unrenewed."""
        ttl = self.lease_ttl(state)
        if ttl is None:
            return None
        try:
            self.router.renew(self.lease(state), ttl)
        except LeaseExpiredError as exc:
            return exc.message
        except LeaseConflictError as exc:
            self.on_warning(exc.message)
        except RouterError as exc:
            self.on_warning(f"could not renew the lease: {exc.message}")
        return None

    def repair_replicas(self, state: RolloutState) -> None:
        """A fleet's replica that lost the route (restarted with an older one, or empty) is
        rewritten before its counters are read. The runner journals each repair itself,
        like a moved alias: it is I/O done to keep the route the loop decided, and no
        decision of the loop depends on it."""
        if not isinstance(self.router, FleetRouter):
            return
        try:
            report = self.router.repair(self.lease(state), self.lease_ttl(state))
        except RouterError as exc:
            self.on_warning(f"could not check the replicas' routes: {exc.message}")
            return
        for problem in report.problems:
            self.on_warning(problem)
        for repair in report.repaired:
            event = self.journal.append(
                state, EventKind.ROUTE_REPAIRED, repair.describe(), repair.to_dict()
            )
            self.on_event(event)

    def write_and_verify(self, state: RolloutState, route: RouteSpec) -> Applied:
        lease = self.lease(state)
        self.router.apply(route, lease, ttl=self.lease_ttl(state))
        seen = self.router.read()
        if not seen.route.same_split(route) or seen.lease != lease:
            raise RouteVerificationError(
                f"the endpoint reports {seen.route.to_dict()} under {seen.lease} after gray wrote "
                f"{route.to_dict()} under {lease}"
            )
        return seen

    def apply_stage(self, state: RolloutState, action: loop.ApplyStage) -> loop.Observation:
        try:
            applied = self.write_and_verify(state, action.route)
        except LeaseConflictError as exc:
            return self.lease_lost(state, exc.message)
        except RouterError as exc:
            return loop.EndpointLost(self.clock.now(), f"serving endpoint: {exc.message}")
        origin = self.origin_snapshot(state)
        if origin is None:
            return loop.EndpointLost(
                self.clock.now(), "metrics source did not answer after the route change"
            )
        return loop.StageRouted(self.clock.now(), applied, origin, action.fresh)

    def origin_snapshot(self, state: RolloutState) -> Snapshot | None:
        for attempt in range(ORIGIN_SNAPSHOT_TRIES):
            try:
                return self.metrics.snapshot(loop.pair_of(state))
            except MetricsError as exc:
                self.on_warning(f"metrics source failed ({exc.message}); retrying")
                self.clock.sleep(min(2.0**attempt, 5.0))
        return None

    def rollback(self, state: RolloutState) -> loop.Observation:
        try:
            applied = self.router.rollback(self.lease(state))
        except LeaseConflictError as exc:
            return self.lease_lost(state, exc.message)
        except RouterError as exc:
            reason = f"ROLLBACK NOT APPLIED, serving endpoint failed: {exc.message}"
            return loop.EndpointLost(self.clock.now(), reason)
        registry = self.registry
        if registry is not None:
            # After the write, never before it: the registry is MLflow, which may hang.
            self.after_write(
                f"tag v{state.candidate} as rolled back",
                lambda: registry.mark_rolled_back(state.model, state.candidate, state.rollout_id),
            )
        return loop.RolledBack(self.clock.now(), applied)

    def promote(self, state: RolloutState) -> loop.Observation:
        """Move the alias first (refused if it moved during the rollout: nothing changes),
        then make the candidate the endpoint's baseline. Both steps are idempotent."""
        moves: list[dict[str, Any]] = []
        if self.plan.promote is not None and self.registry is not None:
            try:
                done = self.registry.promote(
                    state.model,
                    state.candidate,
                    self.plan.promote,
                    state.rollout_id,
                    expect_current=state.baseline,
                )
            except AliasConflictError as exc:
                if not self.registry.alias_points_at(
                    state.model, self.plan.promote.alias, state.candidate
                ):
                    return loop.EndpointLost(self.clock.now(), f"registry refused: {exc.message}")
                done = []  # a resumed promotion: the alias moved already, by us
            except RegistryError as exc:
                return loop.EndpointLost(self.clock.now(), f"registry: {exc.message}")
            moves = [m.to_dict() if hasattr(m, "to_dict") else dict(m) for m in done]
        try:
            self.write_and_verify(state, RouteSpec(baseline=state.candidate))
        except LeaseConflictError as exc:
            # An operator rolled back while we promoted: the endpoint serves the baseline,
            # so the aliases go back too, or the registry and the endpoint would disagree.
            return self.lease_lost(state, f"{exc.message}; {self.undo_moves(state, moves)}")
        except RouterError as exc:
            reason = f"serving endpoint: {exc.message}; {self.undo_moves(state, moves)}"
            return loop.EndpointLost(self.clock.now(), reason)
        return loop.Promoted(self.clock.now(), tuple(moves))

    def undo_moves(self, state: RolloutState, moves: list[dict[str, Any]]) -> str:
        """Put back the aliases a refused promotion moved, newest first; what happened, said."""
        if not moves or self.registry is None:
            return "no alias had moved"
        undone: list[str] = []
        for move in reversed(moves):
            alias, before, after = move["alias"], move.get("from_version"), move["to_version"]
            if before is None:
                continue  # a new keep-previous alias names the version that still serves
            try:
                self.registry.set_alias(
                    state.model,
                    alias,
                    before,
                    expected_from=after,
                    rollout_id=state.rollout_id,
                    reason=f"rollout {state.rollout_id}: promotion refused by the endpoint",
                )
            except RegistryError as exc:
                return (
                    f"ALIASES NOT RESTORED: @{alias} still points at v{after}, not v{before} "
                    f"({exc.message}); fix with `gray rollback {state.model} --to previous`"
                )
            undone.append(f"@{alias} → v{before}")
        text = "aliases restored: " + (", ".join(undone) or "none needed")
        if undone:
            self.on_event(self.journal.append(state, EventKind.ALIASES_RESTORED, text, {}))
        return text

    def lease_lost(
        self, state: RolloutState, reason: str, route: Applied | None = None
    ) -> loop.LeaseLost:
        """Someone took the endpoint: say who and why when the local journal knows (an
        operator's `gray rollback` on this machine journals its reason before we look)."""
        applied = route if route is not None else self.read_or_none()
        rolled_back = applied is not None and applied.route.weight == 0 == applied.route.mirror
        ended = self.local_end(state)
        # An operator's rollback journals its reason a moment after its write: wait for it.
        for _ in range(OPERATOR_RECORD_POLLS if rolled_back else 0):
            if ended is not None:
                break
            self.clock.sleep(OPERATOR_RECORD_POLL_SECONDS)
            ended = self.local_end(state)
        if ended is not None and ended.reason:
            reason = f"{ended.reason} ({reason})"
        return loop.LeaseLost(self.clock.now(), applied, reason)

    def local_end(self, state: RolloutState) -> RolloutState | None:
        try:
            record = self.journal.local.load(state.rollout_id)
        except (OSError, ValueError):
            return None
        if record is None or not record.state.phase.terminal:
            return None
        return record.state

    def read_or_none(self) -> Applied | None:
        try:
            return self.router.read()
        except RouterError:
            return None
