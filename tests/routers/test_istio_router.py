"""The Istio router against the Kubernetes API stand-in: the router contract, then the
VirtualService gray writes (an audience as header matches before the baseline's route,
a mirror, the found route's own settings kept) and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller.errors import RouteNotSupportedError
from gray.controller.journal import EventKind, Journal, LocalJournal
from gray.controller.state import Phase
from gray.controller.types import Audience, Lease, RouteSpec
from tests.fakes import rollout_state
from tests.kubernetes_api_standin import KubernetesApiStandIn
from tests.routers.contract import ROLLOUT_PLAN, RouterContract, RouterHarness
from tests.routers.fault_proxy import FaultProxy
from tests.routers.kubernetes_harness import IstioHarness

NO_REGISTRY = ["--registry-uri", "sqlite:////nonexistent/gray-tests/mlflow.db"]
TEAM = Audience.from_dict({"headers": {"X-Team": ["ml", "data"], "X-Region": "eu"}})


@pytest.fixture
def istio(kubernetes_api: KubernetesApiStandIn, kubernetes_proxy: FaultProxy) -> IstioHarness:
    harness = IstioHarness(kubernetes_proxy, kubernetes_api)
    harness.reset()
    return harness


class TestIstioRouterContract(RouterContract):
    @pytest.fixture
    def harness(self, istio: IstioHarness) -> RouterHarness:
        return istio


def destinations(route: dict) -> list[tuple[str, int]]:
    return [(d["destination"]["subset"], d["weight"]) for d in route["route"]]


def test_an_audience_is_a_header_match_before_the_baselines_route(istio: IstioHarness) -> None:
    istio.standin.change(
        istio.path, {"spec": {"http": [{**istio.current()["spec"]["http"][0], "timeout": "10s"}]}}
    )
    route = RouteSpec("1", "2", weight=0.25, mirror=0.5, audience=TEAM)
    applied = istio.router().apply(route, Lease("reviews", 1), ttl=60)
    assert applied.route.same_split(route)
    audience, default = istio.current()["spec"]["http"]
    assert audience["name"] == "gray-audience"
    assert audience["match"] == [
        {"headers": {"x-region": {"exact": "eu"}, "x-team": {"exact": "ml"}}},
        {"headers": {"x-region": {"exact": "eu"}, "x-team": {"exact": "data"}}},
    ]
    assert destinations(audience) == [("v1", 75), ("v2", 25)]
    assert audience["mirror"] == {"host": "reviews", "subset": "v2"}
    assert audience["mirrorPercentage"] == {"value": 50.0}
    assert (default["name"], destinations(default)) == ("gray-default", [("v1", 100)])
    assert audience["timeout"] == default["timeout"] == "10s"  # the found route's settings


def test_a_promoted_candidate_keeps_its_subset(istio: IstioHarness) -> None:
    router = istio.router()
    lease = Lease("reviews", 1)
    router.apply(RouteSpec("1", "2", weight=0.5), lease, ttl=60)
    assert router.apply(RouteSpec(baseline="2"), lease).route == RouteSpec(baseline="2")
    assert destinations(istio.current()["spec"]["http"][0]) == [("v2", 100)]
    # The next rollout's candidate takes the free subset, v1.
    nxt = RouteSpec("2", "3", weight=0.1)
    assert router.apply(nxt, Lease("reviews-next", 2), ttl=60).route.same_split(nxt)
    assert destinations(istio.current()["spec"]["http"][0]) == [("v2", 90), ("v1", 10)]


def test_a_client_address_audience_and_part_of_a_percent_are_refused(istio: IstioHarness) -> None:
    router = istio.router()
    for route in (
        RouteSpec("1", "2", weight=0.1, audience=Audience(cidr=("10.0.0.0/8",))),
        RouteSpec("1", "2", weight=0.001),
    ):
        with pytest.raises(RouteNotSupportedError):
            router.apply(route, Lease("reviews", 1), ttl=60)
    assert istio.current()["metadata"]["generation"] == 1


def test_gray_rollback_rolls_an_istio_rollout_back_from_its_journaled_plan(
    istio: IstioHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-call button with no endpoint flag: the router comes from the plan the
    rollout journaled, and its write is fenced above the controller's lease."""
    home = tmp_path / "home"
    monkeypatch.setenv("GRAY_HOME", str(home))
    rollout_id = "fraud-20260101-000000-isti"
    plan = ROLLOUT_PLAN.format(router=istio.plan_block, first="10%")
    state = rollout_state(rollout_id, plan_name="contract-rollout", phase=Phase.RUNNING)
    journal = Journal(LocalJournal(home))
    journal.create(state, plan)
    journal.append(state, EventKind.STARTED, "started", {})
    istio.router().apply(RouteSpec("1", "2", weight=0.1), Lease(rollout_id, 1), ttl=600)
    result = CliRunner().invoke(app, ["rollback", rollout_id, "--reason", "pager", *NO_REGISTRY])
    assert result.exit_code == 0, result.output
    assert istio.carried().same_split(RouteSpec("1", "2", weight=0.0))
    assert istio.router().read().lease == Lease(rollout_id, 2)
    assert journal.load(rollout_id).state.phase is Phase.ROLLED_BACK
