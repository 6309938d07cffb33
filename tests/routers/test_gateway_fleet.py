"""A gateway fleet (`router: {type: gateway, urls: [...]}`) against three real replicas.

The defect first: one gateway URL that is really a load balancer in front of the
replicas takes a route write on whichever replica answers, and the others go on
serving the old split without any error. The fleet writes every replica, reads each
back, fails (rolling back every reachable replica) when one refuses or stays away,
repairs a replica that came back without the route, and rolls back every replica it
can reach, saying which it could not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gray.controller.errors import LeaseConflictError, ReplicaWriteError
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.routers.gateway_fleet import GatewayFleet
from gray.controller.types import Lease, RouteSpec
from tests.conftest import DemoRegistry
from tests.gateway_fleet import GatewayReplicas, round_robin_haproxy
from tests.haproxy_server import RunningHaproxy

pytestmark = pytest.mark.slow

TTL = 60.0


@pytest.fixture
def replicas(gateway_fleet: GatewayReplicas, demo_registry: DemoRegistry) -> GatewayReplicas:
    gateway_fleet.reset(demo_registry.versions["baseline"])
    return gateway_fleet


@pytest.fixture
def stage(demo_registry: DemoRegistry) -> RouteSpec:
    versions = demo_registry.versions
    return RouteSpec(baseline=versions["baseline"], candidate=versions["good"], weight=0.3)


@pytest.fixture(scope="module")
def load_balancer(
    gateway_fleet: GatewayReplicas, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningHaproxy]:
    with round_robin_haproxy(tmp_path_factory.mktemp("fleet-lb"), gateway_fleet.urls) as proxy:
        yield proxy


def fleet(replicas: GatewayReplicas, timeout: float = 10.0) -> GatewayFleet:
    """The fleet as a plan builds it, but with no retries of its own inside each replica, so
    the fleet's wait for an unreachable replica is what a test measures."""
    return GatewayFleet([GatewayRouter(u, None, retries=0) for u in replicas.urls], timeout)


def test_one_url_behind_a_load_balancer_writes_one_replica_and_the_fleet_writes_all(
    replicas: GatewayReplicas, load_balancer: RunningHaproxy, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("through-the-balancer")
    with GatewayRouter(load_balancer.url, None) as behind_balancer:
        behind_balancer.apply(stage, lease, ttl=TTL)  # answered 200 by one replica
    holding = [a for a in replicas.routes() if a.route.same_split(stage) and a.lease == lease]
    assert len(holding) == 1  # the other two still serve the baseline alone, silently

    lease = replicas.next_lease("fleet")
    with fleet(replicas) as every_replica:
        applied = every_replica.apply(stage, lease, ttl=TTL)
    assert applied.route.same_split(stage) and applied.lease == lease
    assert all(a.route.same_split(stage) and a.lease == lease for a in replicas.routes())


def test_a_replica_that_refuses_fails_the_write_and_every_replica_is_rolled_back(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("refused")
    with GatewayRouter(replicas.urls[1], None) as one:
        one.rollback(Lease("operator", lease.epoch + 5))  # a newer lease on replica 1 only
    with fleet(replicas) as every_replica, pytest.raises(LeaseConflictError) as refused:
        every_replica.apply(stage, lease, ttl=TTL)
    message = refused.value.message
    assert f"replica {replicas.urls[1]} refused it" in message
    assert f"rolled back to the baseline: {replicas.urls[0]}" in message
    for applied in replicas.routes():
        assert applied.route.weight == 0 and applied.route.mirror == 0


def test_a_replica_unreachable_past_the_timeout_fails_the_write(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    down = replicas.urls[2]
    replicas.kill(2)
    lease = Lease("unreachable", _live_epoch(replicas, skip=2) + 1)
    started = time.monotonic()
    with fleet(replicas, timeout=1.0) as every_replica, pytest.raises(ReplicaWriteError) as lost:
        every_replica.apply(stage, lease, ttl=TTL)
    waited = time.monotonic() - started
    assert 1.0 <= waited < 5.0
    assert f"replica {down} refused it or did not answer" in lost.value.message
    assert f"not rolled back: {down}: NOT WRITTEN" in lost.value.message
    assert all(a.route.weight == 0 for a in _live_routes(replicas, skip=2))
    replicas.alive()
    # A resumed controller writes under the next epoch of the same rollout: every replica,
    # the two rolled back under it and the one that missed everything, takes the stage.
    resumed = Lease("unreachable", lease.epoch + 1)
    with fleet(replicas) as every_replica:
        assert every_replica.apply(stage, resumed, ttl=TTL).lease == resumed
    assert all(a.route.same_split(stage) and a.lease == resumed for a in replicas.routes())


def test_a_promotion_that_misses_a_replica_puts_the_others_back_on_the_baseline(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("promotion")
    with fleet(replicas, timeout=1.0) as every_replica:
        every_replica.apply(stage, lease, ttl=TTL)
        replicas.kill(2)
        assert stage.candidate is not None
        with pytest.raises(ReplicaWriteError):
            every_replica.apply(RouteSpec(baseline=stage.candidate), lease)
    for applied in _live_routes(replicas, skip=2):
        assert applied.route.baseline == stage.baseline and applied.route.weight == 0
    replicas.alive()


def test_a_replica_that_comes_back_within_the_timeout_takes_the_write(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    replicas.kill(0)
    lease = Lease("comes-back", _live_epoch(replicas, skip=0) + 1)
    with fleet(replicas, timeout=60.0) as every_replica:
        restart = threading.Thread(target=replicas.restart, args=(0,))
        restart.start()
        applied = every_replica.apply(stage, lease, ttl=TTL)
        restart.join()
    assert applied.lease == lease
    assert all(a.route.same_split(stage) and a.lease == lease for a in replicas.routes())


def test_repair_rewrites_a_replica_that_came_back_empty_or_with_an_older_route(
    replicas: GatewayReplicas, stage: RouteSpec, demo_registry: DemoRegistry
) -> None:
    lease = replicas.next_lease("repaired")
    with fleet(replicas) as every_replica:
        every_replica.apply(stage, lease, ttl=TTL)
        assert every_replica.repair(lease, TTL).repaired == ()  # nothing lost yet
        replicas.restart(1, empty=True)  # no saved route: the baseline alone, no lease
        older = RouteSpec(baseline=stage.baseline, candidate=stage.candidate, weight=0.05)
        replicas.restart(2, empty=True)
        with GatewayRouter(replicas.urls[2], None) as third:
            third.apply(older, Lease("repaired", lease.epoch - 1), ttl=TTL)
        report = every_replica.repair(lease, TTL)
    found = {repair.url: repair.found for repair in report.repaired}
    assert set(found) == {replicas.urls[1], replicas.urls[2]}
    assert found[replicas.urls[1]].lease is None
    assert found[replicas.urls[2]].route.weight == pytest.approx(0.05)
    assert all(a.route.same_split(stage) and a.lease == lease for a in replicas.routes())
    assert "rewritten to" in report.repaired[0].describe()


def test_a_rollback_that_reached_one_replica_is_followed_by_the_others(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("taken-over")
    with fleet(replicas) as every_replica:
        every_replica.apply(stage, lease, ttl=TTL)
        with GatewayRouter(replicas.urls[0], None) as first:
            first.rollback(lease)  # an operator's rollback reached replica 0 only
        report = every_replica.repair(lease, TTL)
        seen = every_replica.read()
    assert [r.url for r in report.repaired] == replicas.urls[1:]
    assert all(r.followed_takeover for r in report.repaired)
    assert "while another replica was rolled back" in report.repaired[0].describe()
    assert seen.lease is not None and seen.lease.epoch == lease.epoch + 1
    assert all(a.route.weight == 0 for a in replicas.routes())


def test_a_newer_lease_over_candidate_traffic_is_left_alone(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("resumed")
    newer = Lease("resumed", lease.epoch + 1)
    with fleet(replicas) as every_replica:
        every_replica.apply(stage, lease, ttl=TTL)
        with GatewayRouter(replicas.urls[2], None) as third:
            third.apply(stage, newer, ttl=TTL)  # a resumed controller got there first
        assert every_replica.repair(lease, TTL).repaired == ()
        assert every_replica.read().lease == newer


def test_a_rollback_with_a_replica_down_writes_the_others_and_names_it(
    replicas: GatewayReplicas, stage: RouteSpec
) -> None:
    lease = replicas.next_lease("rolled-back")
    with fleet(replicas, timeout=1.0) as every_replica:
        every_replica.apply(stage, lease, ttl=TTL)
        replicas.kill(1)
        with pytest.raises(ReplicaWriteError) as partial:
            every_replica.rollback(lease)
        outcomes = every_replica.outcomes
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "reached 2 of 3 gateway replicas" in partial.value.message
    assert f"{replicas.urls[1]}: NOT WRITTEN" in partial.value.message
    for applied in _live_routes(replicas, skip=1):
        assert applied.route.weight == 0 and applied.lease == Lease("rolled-back", lease.epoch + 1)
    replicas.alive()


def _live_routes(replicas: GatewayReplicas, skip: int) -> list:  # type: ignore[type-arg]
    routes = []
    for index, url in enumerate(replicas.urls):
        if index != skip:
            with GatewayRouter(url, None, retries=0) as router:
                routes.append(router.read())
    return routes


def _live_epoch(replicas: GatewayReplicas, skip: int) -> int:
    return max((a.lease.epoch for a in _live_routes(replicas, skip) if a.lease), default=0)
