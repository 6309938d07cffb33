"""Traffic through a real HAProxy, driven by the HAProxy router, in front of two real model
servers (gray gateways serving one version each): the split, the stickiness of a user
(X-Routing-Key, consistent hashing) while the weights move, and the rollback."""

from __future__ import annotations

from collections import Counter

import pytest

from gray.controller.routers.haproxy import HaproxyRouter
from gray.controller.types import Lease, RouteSpec
from tests.haproxy_server import ModelsBehindHaproxy

pytestmark = pytest.mark.slow

USERS = [f"user-{number}" for number in range(200)]


@pytest.fixture
def models(models_behind_haproxy: ModelsBehindHaproxy) -> ModelsBehindHaproxy:
    models_behind_haproxy.proxy.reset()
    return models_behind_haproxy


def router_for(models: ModelsBehindHaproxy) -> HaproxyRouter:
    proxy = models.proxy
    return HaproxyRouter(proxy.runtime_unix, proxy.backend, proxy.roles, lease_map=proxy.lease_map)


def test_the_split_follows_the_weights_and_users_stay_put(models: ModelsBehindHaproxy) -> None:
    baseline, candidate = models.versions["baseline"], models.versions["candidate"]
    router = router_for(models)
    lease = Lease("r1", 1)

    router.apply(RouteSpec(baseline, candidate, weight=0.2), lease, ttl=60)
    at_20 = models.send(USERS)
    counts = Counter(at_20.values())
    assert set(counts) == {baseline, candidate}  # every request answered by one of them
    # 64/320 of the hash ring: 20 %; the bounds are 4 standard errors for 200 users.
    assert 0.09 < counts[candidate] / len(USERS) < 0.31

    assert models.send(USERS[:50]) == {user: at_20[user] for user in USERS[:50]}  # sticky

    router.apply(RouteSpec(baseline, candidate, weight=0.5), lease, ttl=60)
    at_50 = models.send(USERS)
    assert 0.36 < Counter(at_50.values())[candidate] / len(USERS) < 0.64
    # Consistent hashing: raising the share moves users only towards the candidate.
    assert all(at_50[user] == candidate for user in USERS if at_20[user] == candidate)

    router.rollback(lease)
    assert set(models.send(USERS[:100]).values()) == {baseline}
