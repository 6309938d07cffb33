"""Shared fixtures: real MLflow registries with the demo models, and a real `mlflow server`.

- `demo_registry` (session): a sqlite registry with every demo role registered once.
- `fresh_registry` (function): a private copy of it that a test may change freely.
- `mlflow_server` (session): a real `mlflow server` on 127.0.0.1, started on first use.
- `server_demo_registry` (session): every demo role on that server, for reading.
- `server_registry` (function): the baseline and good roles under a model name of its own
  on that server, so a test may change them freely.
- `store` / `demo_store`: `fresh_registry` / `demo_registry`, then the same on the server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver, running_receiver

# pytest-xdist's workers export the controlling terminal's COLUMNS and LINES. The CLI
# takes an explicit COLUMNS as the width the user asked for, so a worker drops them and
# renders as a serial run does (no terminal: rows kept whole).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

DEMO_MODEL_NAME = "fraud"
SERVER_START_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class DemoRegistry:
    """A registry holding the demo models: `versions` maps role -> version."""

    uri: str
    model_name: str
    versions: dict[str, str]
    root: Path  # the directory of the backing mlflow.db (and artifacts, for sqlite)

    def registry(self, **options: object):  # -> gray.controller.registry.Registry
        from gray.controller.registry import Registry

        return Registry(self.uri, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    root: Path
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session", autouse=True)
def _gray_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep gray's download cache out of the home directory (subprocesses inherit it)."""
    cache = tmp_path_factory.mktemp("gray-cache")
    previous = os.environ.get("GRAY_CACHE_DIR")
    os.environ["GRAY_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("GRAY_CACHE_DIR", None)
    else:
        os.environ["GRAY_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> DemoRegistry:
    from gray.demo.models import register_demo_models

    root = tmp_path_factory.mktemp("demo-registry")
    uri = f"sqlite:///{root}/mlflow.db"
    versions = register_demo_models(uri, DEMO_MODEL_NAME)
    return DemoRegistry(uri=uri, model_name=DEMO_MODEL_NAME, versions=versions, root=root)


@pytest.fixture
def fresh_registry(demo_registry: DemoRegistry, tmp_path: Path) -> DemoRegistry:
    assert demo_registry.root is not None
    root = copy_sqlite_registry(demo_registry.root, tmp_path / "registry")
    return DemoRegistry(
        uri=f"sqlite:///{root}/mlflow.db",
        model_name=demo_registry.model_name,
        versions=dict(demo_registry.versions),
        root=root,
    )


def copy_sqlite_registry(source: Path, destination: Path) -> Path:
    """Copy a sqlite registry directory and repoint its stored artifact paths at the copy.

    MLflow stores absolute artifact locations in the database, so a plain copy would
    still read and write the original's artifacts.
    """
    shutil.copytree(source, destination)
    old, new = f"{source}/", f"{destination}/"
    with sqlite3.connect(destination / "mlflow.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [
                row[1]
                for row in db.execute(f'PRAGMA table_info("{table}")')
                if "CHAR" in row[2].upper() or "TEXT" in row[2].upper()
            ]
            for column in columns:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = REPLACE("{column}", ?, ?) '
                    f'WHERE "{column}" LIKE ?',
                    (old, new, f"%{old}%"),
                )
    return destination


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` (sqlite backend, proxied artifacts) on a free loopback port."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = dict(os.environ)
    # `mlflow server` starts uvicorn/gunicorn by name: the venv's bin must be on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Registry webhooks to a receiver on loopback over http (MLflow allows only public https
    # by default), read from the store at every event rather than cached for a minute.
    env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] = "true"
    env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] = "http,https"
    env["MLFLOW_WEBHOOK_CACHE_TTL"] = "0"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(uri, process, root / "server.log")
        yield MlflowServer(uri=uri, root=root, process=process)
    finally:
        _stop(process)
        log.close()


def _wait_for_server(uri: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    probe = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(probe, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server at {uri} did not answer in {SERVER_START_TIMEOUT_SECONDS}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


_server_model_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def server_demo_registry(mlflow_server: MlflowServer) -> DemoRegistry:
    from gray.demo.models import register_demo_models

    versions = register_demo_models(mlflow_server.uri, DEMO_MODEL_NAME)
    return DemoRegistry(
        uri=mlflow_server.uri,
        model_name=DEMO_MODEL_NAME,
        versions=versions,
        root=mlflow_server.root,
    )


@pytest.fixture
def server_registry(mlflow_server: MlflowServer) -> DemoRegistry:
    """The baseline (@champion) and good (@challenger) roles under a model name of their own."""
    from gray.demo.models import register_demo_models

    name = f"{DEMO_MODEL_NAME}-{next(_server_model_numbers)}"
    versions = register_demo_models(mlflow_server.uri, name, which=("baseline", "good"))
    return DemoRegistry(
        uri=mlflow_server.uri, model_name=name, versions=versions, root=mlflow_server.root
    )


ON_SERVER = pytest.param("server", marks=[pytest.mark.mlflow_server, pytest.mark.slow])


@pytest.fixture(params=["sqlite", ON_SERVER])
def store(request: pytest.FixtureRequest) -> DemoRegistry:
    """A registry a test may change (baseline @champion and good @challenger at least), once
    in sqlite and once on a real `mlflow server`."""
    if request.param == "sqlite":
        return request.getfixturevalue("fresh_registry")
    return request.getfixturevalue("server_registry")


@pytest.fixture(params=["sqlite", ON_SERVER])
def demo_store(request: pytest.FixtureRequest) -> DemoRegistry:
    """A registry with every demo role, for reading only, in sqlite and on a server."""
    if request.param == "sqlite":
        return request.getfixturevalue("demo_registry")
    return request.getfixturevalue("server_demo_registry")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on loopback that keeps every webhook gray posts (tests/receiver.py)."""
    with running_receiver() as running:
        yield running


@pytest.fixture(scope="session")
def models_behind_haproxy(demo_registry: DemoRegistry, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """HAProxy (gray's config snippet) in front of two real gateways, one serving the demo
    baseline, the other the good candidate (tests/haproxy_server.py); started on first use."""
    from tests.haproxy_server import models_behind_haproxy as start

    versions = {
        "baseline": demo_registry.versions["baseline"],
        "candidate": demo_registry.versions["good"],
    }
    with start(
        demo_registry.uri,
        demo_registry.model_name,
        versions,
        tmp_path_factory.mktemp("haproxy-models"),
    ) as models:
        yield models


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One real Prometheus for the session (tests/prometheus_server.py), scraping every
    second and nothing until a test calls `set_targets`; started on first use."""
    from tests.prometheus_server import start_prometheus

    with start_prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture(scope="session")
def gateway_fleet(demo_registry: DemoRegistry, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Three real gateway replicas of the demo model (tests/gateway_fleet.py), started on
    first use; each test that uses them puts them back with `reset(baseline)`."""
    from tests.gateway_fleet import gateway_replicas

    root = tmp_path_factory.mktemp("gateway-fleet")
    with gateway_replicas(demo_registry.uri, demo_registry.model_name, root) as replicas:
        yield replicas


@pytest.fixture(scope="session")
def moto_server():  # type: ignore[no-untyped-def]
    """moto's AWS emulator (SageMaker, CloudWatch) on a free loopback port, once a session."""
    from tests.moto_server import running_moto_server

    with running_moto_server() as server:
        yield server
