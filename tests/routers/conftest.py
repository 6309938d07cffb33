from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES
from tests.kubernetes_api_standin import KubernetesApiStandIn
from tests.routers.fault_proxy import FaultProxy

TOY_PACKAGE = Path(__file__).parent / "toy_router_pkg"


@pytest.fixture
def toy_installed() -> Iterator[None]:
    """The toy package importable and its entry points visible, as after `pip install`;
    gone again afterwards, so other tests see only gray's own types."""
    sys.path.insert(0, str(TOY_PACKAGE))
    ROUTER_TYPES.forget()
    METRICS_TYPES.forget()
    try:
        yield
    finally:
        sys.path.remove(str(TOY_PACKAGE))
        sys.modules.pop("gray_toy_router", None)
        ROUTER_TYPES.forget()
        METRICS_TYPES.forget()


@pytest.fixture(scope="session")
def kubernetes_api() -> Iterator[KubernetesApiStandIn]:
    """The Kubernetes API stand-in (test code) the KServe, Istio and Seldon routers talk
    to; one per session, its objects put back by each harness's `reset`."""
    standin = KubernetesApiStandIn()
    try:
        yield standin
    finally:
        standin.close()


@pytest.fixture(scope="session")
def kubernetes_proxy(kubernetes_api: KubernetesApiStandIn) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the stand-in, which breaks the routers' path on demand."""
    proxy = FaultProxy(("127.0.0.1", kubernetes_api.port))
    try:
        yield proxy
    finally:
        proxy.close()
