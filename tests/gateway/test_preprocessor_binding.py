"""A version is served only with the preprocessor its registry tag names, checked by hash.

In process (a tiny loader stands in for the registry): a tag that changes after the load
makes the version stop answering and load again. Against a real registry and gateway: a
version registered without a binding is not servable and the preflight refuses it; once
bound it is loaded with its preprocessor, and a tag changed later is never ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gray.controller import lookup, rollouts
from gray.controller.errors import PreflightError, VersionNotLoadedError
from gray.controller.metrics.gateway import GatewayMetrics
from gray.controller.plan.loading import parse_plan
from gray.controller.registry import TAG_PREPROCESSOR_SHA256, Registry
from gray.controller.routers.gateway import GatewayRouter
from gray.gateway.models import LOADING, READY, ModelManager
from gray.gateway.testing import RunningGateway, start_gateway
from tests.registry.helpers import client as mlflow_client
from tests.registry.helpers import copy_version

from .helpers import ADMIN, wait_until
from .tiny_models import default_loader

TOKEN = "binding-token"


def test_a_tag_changed_after_the_load_makes_the_version_load_again() -> None:
    loader = default_loader()
    loader.preprocessor_tags["2"] = "a" * 64
    manager = ModelManager(loader)
    try:
        manager.request_load("2")
        assert manager.wait(["2"], timeout=10) == {"2": READY}
        assert manager.describe()["2"]["preprocessor_sha256"] == "a" * 64
        assert manager.revalidate("2") == READY and loader.loads == ["2"]  # unchanged tag

        loader.gate = __import__("threading").Event()  # hold the reload open
        loader.preprocessor_tags["2"] = "b" * 64
        assert manager.revalidate("2") == LOADING
        # While it reloads, the version answers nobody: not with the old preprocessor.
        assert manager.ready("2") is None
        assert "loaded with " + "a" * 64 in (manager.describe()["2"]["reason"] or "")
        loader.gate.set()
        assert manager.wait(["2"], timeout=10) == {"2": READY}
        assert manager.describe()["2"]["preprocessor_sha256"] == "b" * 64
    finally:
        manager.shutdown()


def test_the_gateway_re_reads_tags_on_its_own(make_client: Any, loader: Any) -> None:
    with make_client(verify_interval=0.2) as client:
        client.post("/admin/versions/2/load", headers=ADMIN)
        described = lambda: client.get("/admin/versions", headers=ADMIN).json()["versions"]  # noqa: E731
        wait_until(lambda: described()["2"]["state"] == READY)
        assert described()["2"]["preprocessor_sha256"] is None
        loader.preprocessor_tags["2"] = "c" * 64  # bound after the load
        wait_until(lambda: described()["2"]["preprocessor_sha256"] == "c" * 64, timeout=5)
        assert loader.loads.count("2") == 2


# --- a real registry and a real gateway ---------------------------------------------------


@pytest.fixture
def unbound(fresh_registry: Any) -> str:
    """A version registered the documented way but without binding its preprocessor."""
    return copy_version(
        fresh_registry.uri, fresh_registry.model_name, fresh_registry.versions["good"]
    )


@pytest.fixture
def gateway(fresh_registry: Any, tmp_path: Path) -> Iterator[RunningGateway]:
    running = start_gateway(
        fresh_registry.uri, fresh_registry.model_name, tmp_path / "gw", token=TOKEN
    )
    yield running
    running.stop()


def preflight(registry_uri: str, url: str, candidate: str) -> rollouts.PreflightReport:
    plan = parse_plan(
        f"""
name: binding
model: {{name: fraud, baseline: "@champion", candidate: "{candidate}"}}
registry: {{uri: "{registry_uri}"}}
router: {{url: "{url}", token: "{TOKEN}"}}
interval: 1s
gates: [{{metric: error_rate, max_increase: 50%}}]
stages: [{{weight: 10%, dwell: 10s}}]
"""
    )
    with (
        GatewayRouter(url, TOKEN, load_timeout=60) as router,
        GatewayMetrics(url, TOKEN) as metrics,
    ):
        return rollouts.preflight(
            plan, Registry(registry_uri), router, metrics, lookup.open_journal(None)
        )


def forced(gateway: RunningGateway, version: str, rows: Any) -> httpx.Response:
    body = {"dataframe_split": json.loads(rows.to_json(orient="split"))}
    return httpx.post(
        f"{gateway.url}/invocations",
        json=body,
        headers={**gateway.headers, "X-Model-Version": version},
        timeout=30,
    )


@pytest.mark.slow
def test_an_unbound_version_is_refused_until_bound_and_then_applies_its_preprocessor(
    fresh_registry: Any,
    gateway: RunningGateway,
    unbound: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gray.demo.models import demo_dataset, train_demo_models

    monkeypatch.setenv("GRAY_HOME", str(tmp_path / "home"))
    rows = demo_dataset()[0].iloc[:30]
    router = GatewayRouter(gateway.url, TOKEN, load_timeout=60)
    with pytest.raises(VersionNotLoadedError, match="not servable"):
        router.ensure_loaded(unbound)
    assert forced(gateway, unbound, rows).status_code == 404
    with pytest.raises(PreflightError) as refused:
        preflight(fresh_registry.uri, gateway.url, unbound)
    failed = {check.name: check.detail for check in refused.value.checks if not check.ok}
    assert "no preprocessor bound" in failed["candidate preprocessor"]

    demo = train_demo_models()
    registry = Registry(fresh_registry.uri)
    sha256 = registry.binder.log_preprocessor(
        "fraud", unbound, demo.preprocessors["good"], artifact_path="scaler"
    )
    report = preflight(fresh_registry.uri, gateway.url, unbound)
    loaded = next(check for check in report.checks if check.name == "candidate loaded")
    assert loaded.ok and sha256[:12] in loaded.detail
    assert router.versions()[unbound]["preprocessor_sha256"] == sha256
    answer = forced(gateway, unbound, rows)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == list(demo.predict("good", rows))

    # A tag changed behind the gateway's back: the version is loaded again and, since its
    # files no longer hash to the tag, refused; never kept with the old preprocessor.
    mlflow_client(fresh_registry.uri).set_model_version_tag(
        "fraud", unbound, TAG_PREPROCESSOR_SHA256, "0" * 64
    )
    with pytest.raises(VersionNotLoadedError, match="hash mismatch"):
        router.ensure_loaded(unbound)
    assert forced(gateway, unbound, rows).status_code == 404
    router.close()
    assert httpx.get(f"{gateway.url}/admin/versions", headers=ADMIN).status_code == 401
