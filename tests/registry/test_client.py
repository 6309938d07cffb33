"""RegistryClient: the one MLflow client, its URI rules, bounded retries and error mapping."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

from gray.controller.errors import (
    ConfigError,
    MissingExtraError,
    ModelNotFoundError,
    PreprocessorError,
    RegistryError,
)
from gray.controller.registry import Registry, RegistryClient, resolve_registry_uri
from gray.controller.registry import client as client_module
from tests.test_extras import hide


def test_unreachable_server_fails_fast_with_uri_and_cause(unused_port: int) -> None:
    uri = f"http://127.0.0.1:{unused_port}"
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        Registry(uri, retries=2).resolve("fraud", "@champion")
    elapsed = time.monotonic() - started
    assert type(caught.value) is RegistryError and caught.value.exit_code == 4
    assert uri in caught.value.message
    assert "Connection refused" in caught.value.message
    assert "after 3 attempts" in caught.value.message
    assert 1.4 <= elapsed < 10  # two backoffs (0.5 s + 1 s), no MLflow-internal retry storm


def test_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(ConfigError, match="no MLflow database"):
        Registry(f"sqlite:///{path}").versions("fraud")
    assert not path.exists()


def test_registry_uri_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_registry_uri("sqlite:///plan.db", None) == "sqlite:///plan.db"
    assert resolve_registry_uri(None, "http://cli:5000") == "http://cli:5000"
    assert resolve_registry_uri("sqlite:///plan.db", "http://cli:5000") == "http://cli:5000"
    assert resolve_registry_uri("", "") == "http://env:5000"
    assert resolve_registry_uri(None, None) == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_registry_uri(None, None) == "sqlite:///mlflow.db"


def test_other_mlflow_writers_share_the_client_and_its_error_mapping(store: Any) -> None:
    registry = store.registry()
    registered = registry.client.call(
        "read the model", lambda: registry.client.mlflow.get_registered_model(store.model_name)
    )
    assert registered.name == store.model_name
    with pytest.raises(ModelNotFoundError, match="gone"):
        registry.client.call(
            "read a missing model",
            lambda: registry.client.mlflow.get_registered_model("no-such-model"),
            missing=lambda: ModelNotFoundError("gone"),
        )
    # One registry, one MLflow client: the parts share it.
    assert registry.client.mlflow is registry.client.mlflow


class Flaky:
    """A real registry read that first fails `failures` times with `error`."""

    def __init__(self, read: Any, error: Exception, failures: int) -> None:
        self.read, self.error, self.failures, self.calls = read, error, failures, 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.read()


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_SECONDS", 0.01)


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize(
    "error",
    [
        MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE),
        ConnectionError("reset by peer"),
        TimeoutError("read timed out"),
    ],
    ids=["temporarily-unavailable", "connection", "timeout"],
)
def test_transient_failures_are_retried_within_the_budget(
    fresh_registry: Any, error: Exception
) -> None:
    registry = RegistryClient(fresh_registry.uri, retries=2)
    read = Flaky(lambda: registry.registered_model(fresh_registry.model_name), error, 2)

    assert registry.call("read the model", read).name == fresh_registry.model_name
    assert read.calls == 3

    worse = Flaky(lambda: registry.registered_model(fresh_registry.model_name), error, 3)
    with pytest.raises(RegistryError, match="read the model failed after 3 attempts") as caught:
        registry.call("read the model", worse)
    assert worse.calls == 3
    assert type(caught.value) is RegistryError and caught.value.exit_code == 4
    assert fresh_registry.uri in caught.value.message


def test_a_refusal_is_not_retried(fresh_registry: Any) -> None:
    registry = RegistryClient(fresh_registry.uri, retries=3)
    refused = Flaky(
        lambda: None, MlflowException("bad filter", error_code=INVALID_PARAMETER_VALUE), 1
    )
    with pytest.raises(RegistryError, match=r"list versions failed: bad filter$"):
        registry.call("list versions", refused)
    assert refused.calls == 1
    # A real refusal from the store maps the same way, in one attempt.
    started = time.monotonic()
    with pytest.raises(RegistryError, match="search versions failed"):
        registry.call(
            "search versions",
            lambda: registry.mlflow.search_model_versions(filter_string="no such = syntax"),
        )
    assert time.monotonic() - started < client_module.BACKOFF_FIRST_SECONDS


def test_not_found_maps_to_the_callers_error_and_gray_errors_pass_through(
    fresh_registry: Any,
) -> None:
    registry = RegistryClient(fresh_registry.uri)
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope' in the registry"):
        registry.registered_model("nope")
    with pytest.raises(ModelNotFoundError, match="has no version 999"):
        registry.model_version(fresh_registry.model_name, "999")
    # Without `missing`, not found is a registry failure like any other refusal.
    with pytest.raises(RegistryError, match="read it failed") as caught:
        registry.call("read it", lambda: registry.mlflow.get_registered_model("nope"))
    assert type(caught.value) is RegistryError
    own = PreprocessorError("already explained")
    with pytest.raises(PreprocessorError) as passed:
        registry.call("check", Flaky(lambda: None, own, 1))
    assert passed.value is own


def test_an_unexpected_exception_becomes_a_registry_error_with_its_type(
    fresh_registry: Any,
) -> None:
    registry = RegistryClient(fresh_registry.uri, retries=3)
    broken = Flaky(lambda: None, KeyError("run_id"), 1)
    with pytest.raises(RegistryError, match=r"parse failed: KeyError: 'run_id'$"):
        registry.call("parse", broken)
    assert broken.calls == 1


def test_experiments_of_a_sqlite_store_keep_their_artifacts_beside_it(
    fresh_registry: Any,
) -> None:
    registry = RegistryClient(fresh_registry.uri)
    first = registry.experiment_id("gray-client-test")
    assert registry.experiment_id("gray-client-test") == first
    experiment = registry.mlflow.get_experiment(first)
    assert experiment.artifact_location == (fresh_registry.root / "artifacts").resolve().as_uri()


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ConfigError, match="retries must be 0 or more"):
        RegistryClient("sqlite:///mlflow.db", retries=-1)
    with pytest.raises(ConfigError, match="retries must be 0 or more"):
        Registry("sqlite:///mlflow.db", retries=-1)


def test_mlflow_http_retries_are_bounded_unless_the_user_set_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")
    RegistryClient("http://127.0.0.1:9")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "33"


def test_importing_the_registry_package_leaves_mlflow_unimported() -> None:
    # `gray rollback` and the CLI's start-up import it; MLflow costs about a second.
    code = (
        "import sys, gray.controller.registry, gray.cli.registry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'sqlalchemy')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_sql_store_without_the_store_extra_is_refused_before_anything_is_opened(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hide(monkeypatch, "sqlalchemy")
    with pytest.raises(MissingExtraError, match=r"pip install 'gray-rollout\[store\]'"):
        _ = RegistryClient(f"sqlite:///{tmp_path}/mlflow.db").mlflow
    assert list(tmp_path.iterdir()) == []
    # A tracking server needs no store of its own.
    assert RegistryClient("http://127.0.0.1:9").mlflow is not None
