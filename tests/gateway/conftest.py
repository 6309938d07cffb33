"""Fixtures for the gateway's in-process tests (a tiny loader instead of the registry)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gray.gateway.app import create_app
from gray.gateway.settings import GatewaySettings

from .helpers import TOKEN, wait_until
from .tiny_models import TinyLoader, default_loader


@pytest.fixture
def loader() -> TinyLoader:
    return default_loader()


@pytest.fixture
def make_client(tmp_path: Path, loader: TinyLoader) -> Callable[..., Any]:
    """`with make_client(**settings) as client:` a started in-process gateway, baseline ready."""

    @contextmanager
    def factory(
        client_address: tuple[str, int] = ("127.0.0.1", 50000),
        state_dir: Path | None = None,
        **overrides: Any,
    ) -> Iterator[TestClient]:
        options: dict[str, Any] = {"token": TOKEN, "slo_edges": (0.05, 0.25)}
        options.update(overrides)
        settings = GatewaySettings(
            model_name="tiny", state_dir=state_dir or tmp_path / "state", **options
        )
        app = create_app(settings, loader)
        with TestClient(app, client=client_address) as client:
            wait_until(lambda: client.get("/ping").status_code == 200)
            yield client

    return factory
