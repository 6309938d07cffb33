"""The registry tests run once against a sqlite store and once against a real `mlflow server`."""

from __future__ import annotations

import socket
from typing import Any

import pytest

SERVER = pytest.param("server", marks=[pytest.mark.mlflow_server, pytest.mark.slow])


@pytest.fixture(params=["sqlite", SERVER])
def store(request: pytest.FixtureRequest) -> Any:
    """A registry a test may change: baseline @champion and good @challenger at least."""
    if request.param == "sqlite":
        return request.getfixturevalue("fresh_registry")
    return request.getfixturevalue("server_registry")


@pytest.fixture(params=["sqlite", SERVER])
def demo_store(request: pytest.FixtureRequest) -> Any:
    """A registry with every demo role, for reading only."""
    if request.param == "sqlite":
        return request.getfixturevalue("demo_registry")
    return request.getfixturevalue("server_demo_registry")


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
