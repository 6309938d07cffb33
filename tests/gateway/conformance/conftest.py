"""One sqlite store with every model shape, each served by `mlflow models serve` and by a
gray gateway; all eight processes start side by side, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from gray.gateway.testing import (
    RunningGateway,
    RunningMlflowServe,
    start_gateway,
    start_mlflow_serve,
    wait_for_ping,
)

from .models import SHAPES, Store, build_store

TOKEN = "conformance-token"


@dataclass(frozen=True)
class Pair:
    """The same registered version behind MLflow's scoring server and behind the gateway."""

    name: str
    mlflow: RunningMlflowServe
    gateway: RunningGateway

    def send_both(
        self, body: bytes, content_type: str | None
    ) -> tuple[httpx.Response, httpx.Response]:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        theirs = httpx.post(f"{self.mlflow.url}/invocations", content=body, headers=headers)
        ours = httpx.post(f"{self.gateway.url}/invocations", content=body, headers=headers)
        return theirs, ours

    def stats(self) -> dict:
        response = httpx.get(f"{self.gateway.url}/admin/stats", headers=self.gateway.headers)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("conformance"))


@pytest.fixture(scope="session")
def pairs(store: Store) -> Iterator[dict[str, Pair]]:
    mlflows: dict[str, RunningMlflowServe] = {}
    gateways: dict[str, RunningGateway] = {}
    try:
        for name in SHAPES:
            mlflows[name] = start_mlflow_serve(
                store.uri, store.model_uri(name), store.root / f"{name}-mlflow.log"
            )
            gateways[name] = start_gateway(
                store.uri,
                name,
                store.root / f"{name}-gateway",
                token=TOKEN,
                extra_args=["--baseline", "1"],
                wait_ready=False,
            )
        for name in SHAPES:
            mlflows[name].wait_ready()
            wait_for_ping(gateways[name])
        yield {name: Pair(name, mlflows[name], gateways[name]) for name in SHAPES}
    finally:
        for server in [*mlflows.values(), *gateways.values()]:
            server.stop()
