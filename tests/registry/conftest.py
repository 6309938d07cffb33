"""The registry tests run once against a sqlite store and once against a real `mlflow server`
(the `store` and `demo_store` fixtures of tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import free_port


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    return free_port()
