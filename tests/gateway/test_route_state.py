"""Lease fencing, rollback epochs and the route file that survives restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gray.controller.errors import GatewayError
from gray.controller.types import Applied, Audience, Lease, RouteSpec
from gray.gateway.route_state import LeaseRefused, RouteStore, check_lease

SPLIT = RouteSpec(
    baseline="1", candidate="2", weight=0.2, mirror=0.5, audience=Audience(cidr=("10.0.0.0/8",))
)


def fresh(tmp_path: Path) -> RouteStore:
    return RouteStore(tmp_path / "route.json", "fraud", Applied(RouteSpec(baseline="1"), None))


@pytest.mark.parametrize(
    ("current", "offered", "allowed"),
    [
        (None, Lease("a", 0), True),
        (Lease("a", 3), Lease("a", 3), True),  # the holder writes again
        (Lease("a", 3), Lease("b", 4), True),  # a higher epoch takes over
        (Lease("a", 3), Lease("a", 2), False),  # older epoch
        (Lease("a", 3), Lease("b", 3), False),  # same epoch, other rollout
    ],
)
def test_lease_rules(current: Lease | None, offered: Lease, allowed: bool) -> None:
    if allowed:
        check_lease(current, offered)
    else:
        with pytest.raises(LeaseRefused) as refused:
            check_lease(current, offered)
        assert refused.value.current == current


def test_a_refused_write_changes_nothing(tmp_path: Path) -> None:
    store = fresh(tmp_path)
    store.put(SPLIT, Lease("a", 5), hold=True)
    with pytest.raises(LeaseRefused):
        store.put(RouteSpec(baseline="1", candidate="2", weight=1.0), Lease("a", 4))
    assert store.applied == Applied(SPLIT, Lease("a", 5))
    assert store.compiled.spec == SPLIT


def test_rollback_goes_above_every_epoch_and_keeps_the_pair(tmp_path: Path) -> None:
    store = fresh(tmp_path)
    store.put(SPLIT, Lease("rollout-1", 4), hold=True)
    applied = store.rollback(Lease("oncall", 2))
    assert applied.lease == Lease("oncall", 5)
    assert applied.route == RouteSpec(baseline="1", candidate="2")
    assert store.rollback(Lease("oncall", 9)).lease == Lease("oncall", 10)
    assert store.rollback(None).lease == Lease("oncall", 11)
    # The controller that was fenced out cannot push traffic back.
    with pytest.raises(LeaseRefused):
        store.put(SPLIT, Lease("rollout-1", 4), hold=True)


def test_rollback_with_no_lease_ever_written(tmp_path: Path) -> None:
    assert fresh(tmp_path).rollback(None).lease == Lease("rollback", 1)


def test_the_route_file_restores_route_and_lease(tmp_path: Path) -> None:
    store = fresh(tmp_path)
    assert RouteStore.restore(tmp_path / "route.json", "fraud") is None  # nothing written yet
    store.put(SPLIT, Lease("a", 2), hold=True)
    restored = RouteStore.restore(tmp_path / "route.json", "fraud")
    assert restored is not None
    assert restored.applied == Applied(SPLIT, Lease("a", 2))
    assert restored.compiled.candidate_buckets == 2000
    assert [p.name for p in tmp_path.iterdir()] == ["route.json"]  # no temporary files left


def test_a_route_file_of_another_model_or_a_broken_one_is_refused(tmp_path: Path) -> None:
    fresh(tmp_path).put(SPLIT, Lease("a", 2), hold=True)
    with pytest.raises(GatewayError, match="belongs to model 'fraud'"):
        RouteStore.restore(tmp_path / "route.json", "churn")
    (tmp_path / "route.json").write_text("{half a fi")
    with pytest.raises(GatewayError, match="cannot read the saved route"):
        RouteStore.restore(tmp_path / "route.json", "fraud")


def test_the_file_is_written_before_memory_changes(tmp_path: Path) -> None:
    store = fresh(tmp_path)
    (tmp_path / "route.json").mkdir()  # make the write fail
    with pytest.raises(OSError):
        store.put(SPLIT, Lease("a", 1), hold=True)
    assert store.applied.route == RouteSpec(baseline="1")
    (tmp_path / "route.json").rmdir()
    store.put(SPLIT, Lease("a", 1), hold=True)
    assert json.loads((tmp_path / "route.json").read_text())["route"]["weight"] == 0.2
