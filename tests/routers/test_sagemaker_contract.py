"""The SageMaker router through the router contract (tests/routers/contract.py), against
moto's SageMaker in server mode reached through a FaultProxy.

Each test gets a new endpoint (variants fraud-v1 at weight 1, fraud-v2 at 0). moto
answers every request on a connection of its own, so a write cut midway lets the
router's first four requests through (the lease tags written, the endpoint described)
and cuts the weight update: the weights stay the old split while the tags name the
new one, which read-back reports as the weights' split.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest

from gray.controller.routers.sagemaker import SageMakerRouter
from gray.controller.routers.sagemaker_record import VariantNames
from gray.controller.types import Pair, RouteSpec
from tests.moto_server import MotoServer
from tests.routers.contract import ProxiedHarness, RouterContract, RouterHarness
from tests.routers.fault_proxy import FaultProxy

NAMES = VariantNames("fraud-v{version}")
REQUESTS_BEFORE_THE_WEIGHTS = 4  # DescribeEndpoint, ListTags, AddTags, DescribeEndpoint


class SageMakerHarness(ProxiedHarness):
    unreachable_within_seconds = 5.0

    def __init__(self, proxy: FaultProxy, moto_server: MotoServer) -> None:
        super().__init__(proxy, midway_connections=REQUESTS_BEFORE_THE_WEIGHTS)
        self.moto_server = moto_server
        self.direct = moto_server.client("sagemaker")  # past the proxy
        self.pair = Pair("1", "2")
        self.endpoint = ""

    @property
    def plan_block(self) -> str:
        return (
            f'{{type: sagemaker, endpoint: {self.endpoint}, variant: "fraud-v{{version}}", '
            f'region: eu-west-1, endpoint_url: "{self.proxy.url}"}}'
        )

    def routes(self) -> Sequence[RouteSpec]:
        return (RouteSpec("1", "2", weight=0.05), RouteSpec("1", "2", weight=0.5))

    def reset(self) -> int:
        self.endpoint = self.moto_server.sagemaker_endpoint("contract", ("1", "2"), NAMES.template)
        return 0

    def router(self) -> SageMakerRouter:
        client = self.moto_server.client(
            "sagemaker",
            url=self.proxy.url,
            connect_timeout=1,
            read_timeout=2,
            retries={"total_max_attempts": 2, "mode": "standard"},
        )
        return SageMakerRouter(client, self.endpoint, NAMES, sleep=lambda _: time.sleep(0.01))

    def carried(self) -> RouteSpec:
        """The split by SageMaker's own weights: the baseline's variant alone is the pair
        rolled back; the candidate's alone, the candidate promoted."""
        described = self.direct.describe_endpoint(EndpointName=self.endpoint)
        weights = {
            NAMES.version_of(v["VariantName"]): v.get("CurrentWeight", 0.0)
            for v in described["ProductionVariants"]
        }
        total = sum(weights.values())
        if weights.get("1", 0.0) == 0 and weights.get("2", 0.0) > 0:
            return RouteSpec("2")
        return RouteSpec("1", "2", weight=weights.get("2", 0.0) / total)


class TestSageMakerRouter(RouterContract):
    @pytest.fixture(scope="class")
    def sagemaker_harness(self, moto_server: MotoServer) -> Iterator[SageMakerHarness]:
        host, _, port = moto_server.url.removeprefix("http://").partition(":")
        with FaultProxy((host, int(port))) as proxy:
            yield SageMakerHarness(proxy, moto_server)

    @pytest.fixture
    def harness(self, sagemaker_harness: SageMakerHarness) -> RouterHarness:
        return sagemaker_harness
