"""Fixtures shared by the reliability suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gray.gateway.testing import RunningGateway, start_gateway

LIMITED_GATEWAY_TOKEN = "limits-token"
# Small limits, so that a test reaches each one in about a second.
LIMITS = {
    "max_body": 1024 * 1024,
    "max_connections": 48,
    "header_timeout": 1.0,
    "idle_timeout": 1.0,
}


@pytest.fixture(scope="package")
def limited_gateway(
    demo_registry: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A real gateway serving the demo registry with small limits, shared by the gateway
    tests of this suite (limits, schemathesis)."""
    running = start_limited_gateway(demo_registry, tmp_path_factory)
    yield running
    running.stop()


def start_limited_gateway(
    demo_registry: Any, tmp_path_factory: pytest.TempPathFactory, *extra_args: str
) -> RunningGateway:
    return start_gateway(
        demo_registry.uri,
        demo_registry.model_name,
        tmp_path_factory.mktemp("limited-gateway"),
        token=LIMITED_GATEWAY_TOKEN,
        extra_args=[
            *extra_args,
            "--max-body",
            f"{LIMITS['max_body']}",
            "--max-connections",
            f"{LIMITS['max_connections']}",
            "--header-timeout",
            f"{LIMITS['header_timeout']:g}s",
            "--idle-timeout",
            f"{LIMITS['idle_timeout']:g}s",
        ],
    )
