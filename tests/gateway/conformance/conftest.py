"""One sqlite store with every model shape, each served by `mlflow models serve` and by a
gray gateway; all eight processes start side by side, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

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


@dataclass
class Started:
    """The store and every server started on it (ready or not)."""

    store: Store | None = None
    mlflows: dict[str, RunningMlflowServe] = field(default_factory=dict)
    gateways: dict[str, RunningGateway] = field(default_factory=dict)

    def start(self, store: Store, name: str) -> None:
        self.mlflows[name] = start_mlflow_serve(
            store.uri, store.model_uri(name), store.root / f"{name}-mlflow.log"
        )
        self.gateways[name] = start_gateway(
            store.uri,
            name,
            store.root / f"{name}-gateway",
            token=TOKEN,
            extra_args=["--baseline", "1"],
            wait_ready=False,
        )

    def stop(self) -> None:
        for server in [*self.mlflows.values(), *self.gateways.values()]:
            server.stop()


@pytest.fixture(scope="session")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """Servers start as soon as their model is registered, while the rest registers."""
    started = Started()
    try:
        started.store = build_store(tmp_path_factory.mktemp("conformance"), started.start)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def store(started: Started) -> Store:
    assert started.store is not None
    return started.store


@pytest.fixture(scope="session")
def pairs(started: Started) -> dict[str, Pair]:
    for name in SHAPES:
        started.mlflows[name].wait_ready()
        wait_for_ping(started.gateways[name])
    return {name: Pair(name, started.mlflows[name], started.gateways[name]) for name in SHAPES}
