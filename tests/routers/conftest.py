from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES

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
