"""The router contract: what every router type must do, checked the same way for each.

A router passes when, against its real endpoint (or the endpoint's API stand-in):

- apply and read back: every split the platform can carry is written, returned,
  read back by a second router, and carried by the platform itself;
- rollback: baseline 100 %, no mirror, under an epoch above the one in force, with or
  without the rollout's lease, and repeatable;
- lease conflict: a write under a stale epoch (or the same epoch of another rollout) is
  refused with LeaseConflictError and nothing is written;
- endpoint unreachable: every call raises RouterError after bounded retries, in bounded
  time, and works again once the endpoint is back;
- partial failure: a write that fails midway raises RouterError and leaves no split
  but the old one, the new one or the rolled-back one, and read-back tells the truth
  (a fleet of replicas, written one by one, is first given the repair the
  controller's next look makes: `FleetRouter.repair`);
- a whole rollout with fake traffic that follows the split the platform carries:
  a good candidate is promoted, a bad one rolled back (`run_rollout`).

Adding a router type is a harness (the `RouterHarness` protocol: build the router,
the splits the platform carries, break the endpoint on demand, the platform's own
account of its split) and a test class, in the new type's test module:

    from tests.routers.contract import RouterContract

    class TestKserveRouter(RouterContract):
        @pytest.fixture
        def harness(self, kserve_stand_in) -> RouterHarness:
            return KserveHarness(kserve_stand_in)   # reset to the baseline alone

`FaultProxy` (tests/routers/fault_proxy.py) breaks any TCP endpoint on demand;
`ProxiedHarness` gives a harness built on it `unreachable` and `failing_midway` for
free. Keep the endpoint's fixture module- or session-scoped and `reset` it per test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from gray.controller.errors import LeaseConflictError, RouterError
from gray.controller.journal import Journal, LocalJournal
from gray.controller.loop import begin
from gray.controller.notify import Notifier
from gray.controller.plan.loading import parse_plan
from gray.controller.routers.base import FleetRouter, Router
from gray.controller.runner import Runner
from gray.controller.state import Phase
from gray.controller.types import Applied, Lease, Pair, RouteSpec
from tests.fakes import FakeClock, FakeMetrics, FakeRegistry, VersionBehaviour, rollout_state
from tests.routers.fault_proxy import FaultProxy


class RouterHarness(Protocol):
    """One router type against its endpoint, for the contract suite."""

    pair: Pair  # the baseline and candidate versions the endpoint can serve
    # The plan's `router:` block for this endpoint, as YAML flow text (`{type: ..., ...}`).
    plan_block: str
    # How long a call may take to give up when the endpoint is unreachable.
    unreachable_within_seconds: float

    def routes(self) -> Sequence[RouteSpec]:
        """Two or more candidate splits of `pair` the platform can carry, the first with
        the candidate's share below the second's."""
        ...

    def reset(self) -> int:
        """Put the endpoint back on the baseline alone; the epoch now in force (0: none)."""
        ...

    def router(self) -> Router:
        """A new router to the endpoint, through the path `unreachable` breaks, with short
        retry pauses."""
        ...

    def carried(self) -> RouteSpec:
        """The split the platform serves, by its own account (not through the router)."""
        ...

    def unreachable(self) -> AbstractContextManager[None]:
        """The endpoint cannot be reached while this is entered."""
        ...

    def failing_midway(self) -> AbstractContextManager[None]:
        """The next write fails partway through while this is entered."""
        ...


class ProxiedHarness:
    """The breakable part of a harness whose router reaches its endpoint over TCP through
    a `FaultProxy`: unreachable refuses connections; failing midway lets the write's
    first `midway_connections` connections through (None: every request reaches the
    endpoint and its answer is lost)."""

    def __init__(self, proxy: FaultProxy, midway_connections: int | None = None) -> None:
        self.proxy = proxy
        self.midway_connections = midway_connections

    def unreachable(self) -> AbstractContextManager[None]:
        return self.proxy.refusing()

    def failing_midway(self) -> AbstractContextManager[None]:
        if self.midway_connections is None:
            return self.proxy.losing_answers()
        return self.proxy.cut_after(self.midway_connections)


class RouterContract:
    """The contract tests; a subclass named `Test...` provides the `harness` fixture."""

    @pytest.fixture
    def harness(self) -> RouterHarness:
        raise NotImplementedError("a contract test class provides its harness")

    def test_every_split_is_applied_and_read_back(self, harness: RouterHarness) -> None:
        epoch = harness.reset()
        router, other = harness.router(), harness.router()
        lease = Lease("contract-apply", epoch + 1)
        for route in harness.routes():
            applied = router.apply(route, lease, ttl=60)
            assert applied.route.same_split(route), (applied, route)
            assert applied.lease == lease
            assert other.read() == applied  # another controller reads the same
            assert harness.carried().same_split(route)

    def test_rollback_is_the_baseline_alone_under_a_higher_epoch(
        self, harness: RouterHarness
    ) -> None:
        epoch = harness.reset()
        router = harness.router()
        route = harness.routes()[0]
        lease = Lease("contract-rollback", epoch + 1)
        router.apply(route, lease, ttl=60)
        rolled = router.rollback(lease)
        assert_rolled_back(rolled, route, above=lease.epoch)
        assert harness.carried().same_split(route.rolled_back())
        assert harness.router().read() == rolled
        again = harness.router().rollback(None)  # the on-call button, knowing no lease
        assert_rolled_back(again, route, above=rolled.lease.epoch if rolled.lease else 0)

    def test_a_stale_epoch_is_refused_and_nothing_is_written(self, harness: RouterHarness) -> None:
        epoch = harness.reset()
        stale, operator = harness.router(), harness.router()
        first, second = harness.routes()[:2]
        lease = Lease("contract-stale", epoch + 1)
        stale.apply(first, lease, ttl=60)
        rolled = operator.rollback(None)
        for write in (lease, Lease("another-rollout", rolled.lease.epoch if rolled.lease else 0)):
            with pytest.raises(LeaseConflictError):
                stale.apply(second, write, ttl=60)
            assert harness.carried().same_split(first.rolled_back())
            assert operator.read() == rolled
        with pytest.raises(LeaseConflictError):
            stale.renew(lease, 60)
        assert operator.read() == rolled

    def test_an_unreachable_endpoint_is_a_router_error_in_bounded_time(
        self, harness: RouterHarness
    ) -> None:
        epoch = harness.reset()
        router = harness.router()
        route, lease = harness.routes()[0], Lease("contract-unreachable", epoch + 1)
        calls = {
            "read": router.read,
            "apply": lambda: router.apply(route, lease, ttl=60),
            "renew": lambda: router.renew(lease, 60),
            "rollback": lambda: router.rollback(lease),
        }
        with harness.unreachable():
            for name, call in calls.items():
                started = time.monotonic()
                with pytest.raises(RouterError):
                    call()
                took = time.monotonic() - started
                assert took < harness.unreachable_within_seconds, (name, took)
        carried = harness.carried()  # nothing got through
        assert (carried.weight, carried.mirror) == (0, 0), carried
        assert harness.router().apply(route, lease, ttl=60).route.same_split(route)

    def test_a_write_that_fails_midway_leaves_no_half_split(self, harness: RouterHarness) -> None:
        epoch = harness.reset()
        router = harness.router()
        first, second = harness.routes()[:2]
        lease = Lease("contract-midway", epoch + 1)
        router.apply(first, lease, ttl=60)
        with harness.failing_midway(), pytest.raises(RouterError):
            harness.router().apply(second, lease, ttl=60)
        if isinstance(router, FleetRouter):
            # Replicas are written one by one: the controller's next look repairs the
            # ones the failed write could not reach, before anything is read.
            router.repair(lease, 60)
        carried = harness.carried()
        assert any(carried.same_split(r) for r in (first, second, first.rolled_back())), carried
        assert harness.router().read().route.same_split(carried)  # read-back tells the truth

    def test_a_good_candidate_is_promoted_with_fake_traffic(
        self, harness: RouterHarness, tmp_path: Path
    ) -> None:
        outcome = run_rollout(harness, tmp_path, candidate_error_rate=0.01)
        assert (outcome.exit_code, outcome.phase) == (0, Phase.PROMOTED), outcome
        assert outcome.carried.baseline == harness.pair.candidate
        assert outcome.carried.weight == 0 and outcome.carried.mirror == 0

    def test_a_bad_candidate_is_rolled_back_with_fake_traffic(
        self, harness: RouterHarness, tmp_path: Path
    ) -> None:
        outcome = run_rollout(harness, tmp_path, candidate_error_rate=0.2)
        assert (outcome.exit_code, outcome.phase) == (1, Phase.ROLLED_BACK), outcome
        assert outcome.carried.baseline == harness.pair.baseline
        assert outcome.carried.weight == 0 and outcome.carried.mirror == 0


def assert_rolled_back(rolled: Applied, route: RouteSpec, above: int) -> None:
    assert rolled.route.same_split(route.rolled_back()), rolled
    assert rolled.lease is not None and rolled.lease.epoch > above, rolled


# --- a whole rollout through any router ------------------------------------------------------

ROLLOUT_PLAN = """\
name: contract-rollout
model: {{name: fraud, baseline: "@champion", candidate: "@challenger"}}
router: {router}
metrics: {{type: gateway}}
interval: 2s
gates:
  - {{metric: error_rate, max_increase: 10%, max_increase_abs: 0.5%, min_samples: 200}}
stages:
  - {{weight: {first}, dwell: 4s}}
  - {{weight: 100%, dwell: 4s}}
promote: {{alias: champion, keep_previous_as: previous-champion}}
"""


TRAFFIC_RPS = 1000.0


@dataclass(frozen=True)
class RolloutOutcome:
    exit_code: int
    phase: Phase
    carried: RouteSpec  # the split the platform serves at the end


class CarriedRoute:
    """What FakeMetrics reads the route from: the split the platform serves, so the fake
    traffic follows the endpoint's own account rather than what the router believes."""

    def __init__(self, harness: RouterHarness) -> None:
        self._harness = harness

    @property
    def applied(self) -> Applied:
        return Applied(self._harness.carried(), None)


def run_rollout(
    harness: RouterHarness, tmp_path: Path, candidate_error_rate: float
) -> RolloutOutcome:
    """A two-stage rollout of `harness.pair` through the harness's router, judged on fake
    traffic (1,000 requests/s on a fake clock) split by the platform's own split; the
    baseline fails 1 % of requests, the candidate `candidate_error_rate`."""
    epoch = harness.reset()
    first = harness.routes()[0].weight
    text = ROLLOUT_PLAN.format(router=harness.plan_block, first=f"{first:.6g}")
    plan = parse_plan(text, "contract.yaml", environ={})
    clock = FakeClock()
    behaviour = {
        harness.pair.baseline: VersionBehaviour(error_rate=0.01),
        harness.pair.candidate: VersionBehaviour(error_rate=candidate_error_rate),
    }
    metrics = FakeMetrics(clock, CarriedRoute(harness), rps=TRAFFIC_RPS, behaviour=behaviour)  # type: ignore[arg-type]
    journal = Journal(LocalJournal(tmp_path / "home"))
    router = harness.router()
    runner = Runner(plan, router, metrics, FakeRegistry(), journal, Notifier(()), clock)
    state = rollout_state(
        f"contract-{time.monotonic_ns()}",
        plan_name=plan.name,
        started_at=clock.now(),
        baseline=harness.pair.baseline,
        candidate=harness.pair.candidate,
        epoch=epoch + 1,
    )
    journal.create(state, text)
    result = runner.run(begin(plan, state))
    return RolloutOutcome(result.exit_code, result.state.phase, harness.carried())
