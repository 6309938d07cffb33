"""Candidate traffic under a lease with a time-to-live: renewed by its writer, or back to the
baseline by itself; `hold` keeps it with no expiry, visibly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gray.controller.types import Applied, Lease, RouteSpec
from gray.gateway.route_state import LeaseRefused, RouteStore, TermsRequired
from tests.metrics_text import sample

from .helpers import ADMIN, put_route, route, wait_until

SPLIT = RouteSpec(baseline="1", candidate="2", weight=0.3)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def store_at(tmp_path: Path, clock: Clock) -> RouteStore:
    initial = Applied(RouteSpec(baseline="1"), None)
    return RouteStore(tmp_path / "route.json", "fraud", initial, clock=clock)


def test_candidate_traffic_needs_a_ttl_or_an_explicit_hold(tmp_path: Path) -> None:
    store = store_at(tmp_path, Clock())
    with pytest.raises(TermsRequired, match="ttl"):
        store.put(SPLIT, Lease("r", 1))
    assert store.applied.route == RouteSpec(baseline="1")
    # A route without candidate traffic has nothing to expire.
    store.put(RouteSpec(baseline="1", candidate="2"), Lease("r", 1))
    assert store.status()["lease_expires_at"] is None and store.status()["hold"] is False


def test_an_unrenewed_lease_sends_everything_back_to_the_baseline(tmp_path: Path) -> None:
    clock = Clock()
    store = store_at(tmp_path, clock)
    store.put(SPLIT, Lease("r", 4), ttl=10.0)
    clock.now += 9.9
    assert store.expire_if_due() is None
    store.renew(Lease("r", 4), 10.0)  # the writer looked again
    clock.now += 9.9
    assert store.expire_if_due() is None and store.applied.route == SPLIT
    clock.now += 0.2
    expiry = store.expire_if_due()
    assert expiry is not None and expiry.lease == Lease("r", 4) and expiry.route == SPLIT
    # Under an epoch above the writer's: a controller that comes back cannot renew or write.
    assert store.applied == Applied(SPLIT.rolled_back(), Lease("r", 5))
    assert store.compiled.candidate_buckets == 0
    with pytest.raises(LeaseRefused, match="expired") as late:
        store.renew(Lease("r", 4), 10.0)
    assert late.value.expired
    with pytest.raises(LeaseRefused):
        store.put(SPLIT, Lease("r", 4), ttl=10.0)
    status = store.status()
    assert status["last_expiry"]["lease"] == {"rollout_id": "r", "epoch": 4}
    assert status["lease_expires_at"] is None and store.expiries == 1
    # A resumed controller writes above the expiry's epoch and carries on.
    store.put(SPLIT, Lease("r", 5), ttl=10.0)
    assert store.applied.route == SPLIT


def test_hold_keeps_traffic_with_no_expiry(tmp_path: Path) -> None:
    clock = Clock()
    store = store_at(tmp_path, clock)
    store.put(SPLIT, Lease("r", 1), hold=True)
    clock.now += 10**7
    assert store.expire_if_due() is None and store.applied.route == SPLIT
    assert store.status()["hold"] is True and store.status()["lease_expires_at"] is None


def test_the_expiry_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    store_at(tmp_path, clock).put(SPLIT, Lease("r", 1), ttl=5.0)
    saved = json.loads((tmp_path / "route.json").read_text())
    assert saved["lease_terms"] == {"expires_at": 1_005.0, "ttl": 5.0, "hold": False}
    restored = RouteStore.restore(tmp_path / "route.json", "fraud")
    assert restored is not None and restored.terms.expires_at == 1_005.0
    # Restored after the expiry (the gateway was down): the baseline at once.
    assert restored.expire_if_due() is not None
    assert restored.applied.route == SPLIT.rolled_back()


def test_the_admin_api_shows_the_lease_and_renews_it(make_client: Any) -> None:
    with make_client() as client:
        body = {"route": route(weight=0.5), "lease": {"rollout_id": "r", "epoch": 1}}
        refused = client.put("/admin/route", json=body, headers=ADMIN)
        assert refused.status_code == 422
        assert refused.json()["error"] == "lease_terms_required"
        both = client.put("/admin/route", json={**body, "ttl": 5, "hold": True}, headers=ADMIN)
        assert both.status_code == 422

        written = put_route(client, route(weight=0.5), ttl=30.0).json()
        assert 29 < written["lease_seconds_left"] <= 30 and written["hold"] is False
        renewal = {"lease": {"rollout_id": "r1", "epoch": 1}, "ttl": 60}
        renewed = client.post("/admin/route/renew", json=renewal, headers=ADMIN)
        assert renewed.status_code == 200 and renewed.json()["lease_seconds_left"] > 59
        stale = {"lease": {"rollout_id": "r1", "epoch": 0}, "ttl": 60}
        conflict = client.post("/admin/route/renew", json=stale, headers=ADMIN)
        assert conflict.status_code == 409 and conflict.json()["error"] == "lease_conflict"
        metrics = client.get("/metrics", headers=ADMIN).text
        assert sample(metrics, "gray_route_held") == 0
        assert (sample(metrics, "gray_route_lease_expires_at_seconds") or 0) > 0

        held = put_route(client, route(weight=0.5), epoch=2).json()
        assert held["hold"] is True and held["lease_expires_at"] is None
        assert sample(client.get("/metrics", headers=ADMIN).text, "gray_route_held") == 1


def test_the_gateway_expires_the_lease_by_itself(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client() as client:
        put_route(client, route(weight=1.0), rollout="r9", epoch=3, ttl=0.3)
        assert client.get("/admin/route", headers=ADMIN).json()["route"]["weight"] == 1.0
        wait_until(
            lambda: client.get("/admin/route", headers=ADMIN).json()["route"]["weight"] == 0.0,
            timeout=3,
        )
        seen = client.get("/admin/route", headers=ADMIN).json()
        assert seen["lease"] == {"rollout_id": "r9", "epoch": 4}
        assert seen["last_expiry"]["lease"] == {"rollout_id": "r9", "epoch": 3}
        assert seen["last_expiry"]["route"]["weight"] == 1.0
        page = client.get("/metrics", headers=ADMIN).text
        assert sample(page, "gray_lease_expiries_total") == 1
        late = {"lease": {"rollout_id": "r9", "epoch": 3}, "ttl": 5}
        refused = client.post("/admin/route/renew", json=late, headers=ADMIN)
        assert refused.status_code == 409 and refused.json()["error"] == "lease_expired"
        assert any(
            "lease of rollout r9 (epoch 3) expired" in r.getMessage() for r in caplog.records
        )
