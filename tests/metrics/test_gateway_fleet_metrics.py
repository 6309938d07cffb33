"""A gateway fleet's counters (`metrics: {type: gateway}` with `urls`) against three real
replicas: the sum of what each replica says, through a replica's SIGKILL and restart
(nothing counted twice, nothing it reported lost, the sum never going backwards) and
with a replica away at a look (carried at its last reading)."""

from __future__ import annotations

import pytest

from gray.controller.errors import MetricsError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.metrics.gateway_fleet import GatewayFleetMetrics
from gray.controller.types import ROUTING_GROUPS, Pair
from gray.gateway.routing import group_of
from tests.conftest import DemoRegistry
from tests.gateway_fleet import SLO_EDGES, GatewayReplicas, answered_by

pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(gateway_fleet: GatewayReplicas, demo_registry: DemoRegistry) -> GatewayReplicas:
    gateway_fleet.reset(demo_registry.versions["baseline"])
    return gateway_fleet


@pytest.fixture
def body() -> dict[str, object]:
    from gray.demo.models import demo_dataset

    features, _ = demo_dataset()
    row = features.head(1).to_dict(orient="split")
    return {"dataframe_split": {"columns": row["columns"], "data": row["data"]}}


def send(url: str, count: int, body: dict[str, object]) -> None:
    for number in range(count):
        assert answered_by(url, f"user-{number}", body).isdigit()


def fleet_metrics(replicas: GatewayReplicas) -> GatewayFleetMetrics:
    return GatewayFleetMetrics(
        [GatewayMetrics(url, None, slo_edges=SLO_EDGES, retries=0) for url in replicas.urls]
    )


def test_the_sum_of_every_replica_through_a_kill_and_a_restart(
    replicas: GatewayReplicas, demo_registry: DemoRegistry, body: dict[str, object]
) -> None:
    pair = Pair(demo_registry.versions["baseline"], demo_registry.versions["good"])
    each = [GatewayMetrics(url, None, slo_edges=SLO_EDGES) for url in replicas.urls]
    source = fleet_metrics(replicas)
    first = source.snapshot(pair)
    start = first.baseline.requests
    assert start == sum(one.snapshot(pair).baseline.requests for one in each)

    for index, count in enumerate((3, 5, 7)):
        send(replicas.urls[index], count, body)
    assert source.snapshot(pair).baseline.requests == start + 15

    replicas.kill(1)  # it reported its 5 at the last look: they stay counted
    away = source.snapshot(pair)
    assert away.baseline.requests == start + 15
    assert len(source.missing) == 1 and replicas.urls[1] in source.missing[0]
    send(replicas.urls[0], 2, body)
    assert source.snapshot(pair).baseline.requests == start + 17  # the others still count

    replicas.restart(1)  # same state directory and port: its counters start from zero
    send(replicas.urls[1], 4, body)
    back = source.snapshot(pair)
    assert back.baseline.requests == start + 21
    assert source.missing == ()
    # The gates' cumulative series: every latency bucket, counted the same way.
    assert back.baseline.latency_buckets[-1][1] == back.baseline.requests
    # And per hash group of the routing key, summed the same way through the kill.
    assert back.baseline.groups is not None and first.baseline.groups is not None
    grown = back.baseline.groups.minus(first.baseline.groups)
    expected = [0] * ROUTING_GROUPS
    for count in (3, 5, 7, 2, 4):
        for number in range(count):
            expected[group_of(f"user-{number}")] += 1
    assert list(grown.requests) == expected
    replicas.alive()


def test_no_data_when_every_replica_is_away_or_one_was_never_read(
    replicas: GatewayReplicas, demo_registry: DemoRegistry
) -> None:
    pair = Pair(demo_registry.versions["baseline"], demo_registry.versions["good"])
    replicas.kill(2)
    with pytest.raises(MetricsError, match="not read yet"):
        fleet_metrics(replicas).snapshot(pair)
    only_the_dead = GatewayFleetMetrics([GatewayMetrics(replicas.urls[2], None, retries=0)])
    with pytest.raises(MetricsError, match="no gateway replica answered"):
        only_the_dead.snapshot(pair)
    replicas.alive()
