"""gray's own routers through the router contract (tests/routers/contract.py): the gateway
(one real gateway process, a replica of the session's fleet) and HAProxy (a real HAProxy,
its servers on closed ports: weights and leases only), each reached through a FaultProxy."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager

import pytest

from gray.controller.routers.gateway import GatewayRouter
from gray.controller.routers.gateway_fleet import GatewayFleet
from gray.controller.routers.haproxy import HaproxyRouter
from gray.controller.routers.haproxy_runtime import RuntimeAddress, RuntimeApi
from gray.controller.types import Audience, Lease, Pair, RouteSpec
from gray.gateway.testing import free_port
from tests.conftest import DemoRegistry
from tests.gateway_fleet import GatewayReplicas
from tests.haproxy_server import RunningHaproxy, start_haproxy
from tests.routers.contract import ProxiedHarness, RouterContract, RouterHarness
from tests.routers.fault_proxy import FaultProxy

FAST_RETRY_PAUSE_SECONDS = 0.01


def fast_sleep(_: float) -> None:
    time.sleep(FAST_RETRY_PAUSE_SECONDS)


# --- the gateway ------------------------------------------------------------------------------


class GatewayHarness(ProxiedHarness):
    """One gateway of the session's fleet; a write cut midway reaches the gateway and
    loses its answer (the gateway's write is one request)."""

    unreachable_within_seconds = 3.0

    def __init__(self, proxy: FaultProxy, replicas: GatewayReplicas, pair: Pair) -> None:
        super().__init__(proxy)
        self.url = replicas.urls[0]
        self.pair = pair
        self.direct = GatewayRouter(self.url, None, retries=0)  # past the proxy

    @property
    def plan_block(self) -> str:
        return f'{{type: gateway, url: "{self.proxy.url}"}}'

    def routes(self) -> Sequence[RouteSpec]:
        baseline, candidate = self.pair.baseline, self.pair.candidate
        return (
            RouteSpec(baseline, candidate, weight=0.1, mirror=0.3),
            RouteSpec(
                baseline, candidate, weight=0.5, audience=Audience(headers=(("X-Team", ("ml",)),))
            ),
        )

    def reset(self) -> int:
        held = self.direct.read().lease
        epoch = (held.epoch if held else 0) + 1
        self.direct.apply(RouteSpec(self.pair.baseline), Lease("contract-reset", epoch))
        return epoch

    def router(self) -> GatewayRouter:
        return GatewayRouter(self.proxy.url, None, timeout=2.0, retries=2, sleep=fast_sleep)

    def carried(self) -> RouteSpec:
        return self.direct.read().route


class TestGatewayRouter(RouterContract):
    @pytest.fixture(scope="class")
    def gateway_harness(
        self, gateway_fleet: GatewayReplicas, demo_registry: DemoRegistry
    ) -> Iterator[GatewayHarness]:
        versions = demo_registry.versions
        gateway_fleet.alive()
        with FaultProxy(("127.0.0.1", gateway_fleet.replicas[0].port)) as proxy:
            harness = GatewayHarness(
                proxy, gateway_fleet, Pair(versions["baseline"], versions["good"])
            )
            yield harness
            harness.direct.close()

    @pytest.fixture
    def harness(self, gateway_harness: GatewayHarness) -> RouterHarness:
        return gateway_harness


# --- a gateway fleet ----------------------------------------------------------------------------

FLEET_TIMEOUT_SECONDS = 0.5  # how long the fleet waits for an unreachable replica


class FleetHarness:
    """The session's three gateway replicas as one fleet, each behind its own FaultProxy:
    unreachable breaks them all; a write fails midway when the last replica cannot be
    reached (the others took it). `carried` is the split every replica serves; replicas
    that disagree carry no one split, and fail the check."""

    unreachable_within_seconds = 3.0

    def __init__(self, proxies: list[FaultProxy], replicas: GatewayReplicas, pair: Pair) -> None:
        self.proxies = proxies
        self.replicas = replicas
        self.pair = pair
        self.direct = [GatewayRouter(url, None, retries=0) for url in replicas.urls]

    @property
    def plan_block(self) -> str:
        urls = ", ".join(f'"{proxy.url}"' for proxy in self.proxies)
        return f"{{type: gateway, urls: [{urls}]}}"

    def routes(self) -> Sequence[RouteSpec]:
        baseline, candidate = self.pair.baseline, self.pair.candidate
        return (
            RouteSpec(baseline, candidate, weight=0.1, mirror=0.3),
            RouteSpec(baseline, candidate, weight=0.5),
        )

    def reset(self) -> int:
        self.replicas.reset(self.pair.baseline)
        epochs = [a.lease.epoch for a in (r.read() for r in self.direct) if a.lease]
        return max(epochs, default=0)

    def router(self) -> GatewayFleet:
        replicas = [
            GatewayRouter(proxy.url, None, timeout=2.0, retries=0, sleep=fast_sleep)
            for proxy in self.proxies
        ]
        return GatewayFleet(replicas, FLEET_TIMEOUT_SECONDS)

    def carried(self) -> RouteSpec:
        routes = [replica.read().route for replica in self.direct]
        assert all(route.same_split(routes[0]) for route in routes), routes
        return routes[0]

    @contextmanager
    def unreachable(self) -> Iterator[None]:
        with ExitStack() as stack:
            for proxy in self.proxies:
                stack.enter_context(proxy.refusing())
            yield

    def failing_midway(self) -> AbstractContextManager[None]:
        return self.proxies[-1].refusing()


class TestGatewayFleetRouter(RouterContract):
    @pytest.fixture(scope="class")
    def fleet_harness(
        self, gateway_fleet: GatewayReplicas, demo_registry: DemoRegistry
    ) -> Iterator[FleetHarness]:
        versions = demo_registry.versions
        gateway_fleet.alive()
        with ExitStack() as stack:
            proxies = [
                stack.enter_context(FaultProxy(("127.0.0.1", replica.port)))
                for replica in gateway_fleet.replicas
            ]
            harness = FleetHarness(
                proxies, gateway_fleet, Pair(versions["baseline"], versions["good"])
            )
            yield harness
            for direct in harness.direct:
                direct.close()

    @pytest.fixture
    def harness(self, fleet_harness: FleetHarness) -> RouterHarness:
        return fleet_harness


# --- HAProxy ----------------------------------------------------------------------------------

# A write from 20 % to 80 % changes both servers' weights (256/64 to 64/256). The cut falls
# after the lease record's read, read and write, and one more command: the weights' line,
# which once set them one server at a time and left a 50 % split behind.
HAPROXY_MIDWAY_CONNECTIONS = 4


class HaproxyHarness(ProxiedHarness):
    """A real HAProxy whose servers are closed ports: weights and lease records only."""

    pair = Pair("1", "2")
    unreachable_within_seconds = 3.0

    def __init__(self, proxy: FaultProxy, running: RunningHaproxy) -> None:
        super().__init__(proxy, HAPROXY_MIDWAY_CONNECTIONS)
        self.running = running

    @property
    def plan_block(self) -> str:
        return (
            f'{{type: haproxy, runtime_api: "{self.proxy.tcp}", backend: {self.running.backend}, '
            f'servers: {{baseline: baseline, candidate: candidate}}, lease_map: "{self.running.lease_map}"}}'
        )

    def routes(self) -> Sequence[RouteSpec]:
        return (RouteSpec("1", "2", weight=0.2), RouteSpec("1", "2", weight=0.8))

    def reset(self) -> int:
        self.running.reset()
        return 0

    def router(self) -> HaproxyRouter:
        router = self._router(self.proxy.tcp)
        router.api = RuntimeApi(RuntimeAddress.parse(self.proxy.tcp), 2.0, sleep=fast_sleep)
        return router

    def carried(self) -> RouteSpec:
        """The split HAProxy's server weights make (the lease record only names the
        versions), read over the unix socket, past the proxy."""
        return self._router(self.running.runtime_unix).read().route

    def _router(self, runtime_api: str) -> HaproxyRouter:
        running = self.running
        return HaproxyRouter(
            runtime_api, running.backend, running.roles, lease_map=running.lease_map
        )


class TestHaproxyRouter(RouterContract):
    @pytest.fixture(scope="class")
    def haproxy_harness(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaproxyHarness]:
        servers = {"baseline": f"127.0.0.1:{free_port()}", "candidate": f"127.0.0.1:{free_port()}"}
        with (
            start_haproxy(tmp_path_factory.mktemp("contract-haproxy"), servers) as haproxy,
            FaultProxy(("127.0.0.1", haproxy.runtime_port)) as proxy,
        ):
            yield HaproxyHarness(proxy, haproxy)

    @pytest.fixture
    def harness(self, haproxy_harness: HaproxyHarness) -> RouterHarness:
        return haproxy_harness
