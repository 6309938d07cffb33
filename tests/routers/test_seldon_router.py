"""The Seldon Core 2 router against the Kubernetes API stand-in: the router contract,
then the Experiment gray writes (both models always among the candidates, weights out
of 1000, the mirror, `default` left as it was) and what it refuses."""

from __future__ import annotations

import pytest

from gray.controller.errors import RouteNotSupportedError
from gray.controller.types import Audience, Lease, RouteSpec
from tests.kubernetes_api_standin import KubernetesApiStandIn
from tests.routers.contract import RouterContract, RouterHarness
from tests.routers.fault_proxy import FaultProxy
from tests.routers.kubernetes_harness import SeldonHarness


@pytest.fixture
def seldon(kubernetes_api: KubernetesApiStandIn, kubernetes_proxy: FaultProxy) -> SeldonHarness:
    harness = SeldonHarness(kubernetes_proxy, kubernetes_api)
    harness.reset()
    return harness


class TestSeldonRouterContract(RouterContract):
    @pytest.fixture
    def harness(self, seldon: SeldonHarness) -> RouterHarness:
        return seldon


def test_the_experiment_splits_by_weight_and_mirrors(seldon: SeldonHarness) -> None:
    router = seldon.router()
    lease = Lease("iris", 1)
    shadow = RouteSpec("1", "2", mirror=0.25)
    assert router.apply(shadow, lease, ttl=60).route.same_split(shadow)
    spec = seldon.current()["spec"]
    assert spec["candidates"] == [{"name": "iris", "weight": 1000}, {"name": "iris2", "weight": 0}]
    assert spec["mirror"] == {"name": "iris2", "percent": 25}
    assert spec["default"] == "iris"
    canary = RouteSpec("1", "2", weight=0.005)
    assert router.apply(canary, lease, ttl=60).route.same_split(canary)
    spec = seldon.current()["spec"]
    assert spec["candidates"] == [{"name": "iris", "weight": 995}, {"name": "iris2", "weight": 5}]
    assert "mirror" not in spec
    rolled = router.rollback(lease)
    assert rolled.route.same_split(canary.rolled_back())
    assert seldon.current()["spec"]["candidates"][1] == {"name": "iris2", "weight": 0}


def test_an_audience_is_refused_with_nothing_written(seldon: SeldonHarness) -> None:
    team = Audience.from_dict({"headers": {"X-Team": "ml"}})
    with pytest.raises(RouteNotSupportedError, match="no cidr or header rules"):
        seldon.router().apply(RouteSpec("1", "2", weight=0.1, audience=team), Lease("i", 1))
    assert seldon.current()["metadata"]["generation"] == 1
