"""The one place gray creates and calls an MLflow client: URI rules, bounded retries, errors.

Every MLflow call of the registry package (and of the journal's MLflow run) goes through a
`RegistryClient`: `call` retries transient failures with bounded backoff and turns whatever
MLflow raises into gray's error tree (controller/errors.py), naming the registry and the
cause. mlflow is imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gray.controller.errors import ConfigError, GrayError, ModelNotFoundError, RegistryError
from gray.controller.extras import require_store_for

__all__ = [
    "DEFAULT_REGISTRY_URI",
    "RegistryClient",
    "bound_mlflow_http_retries",
    "describe_cause",
    "resolve_registry_uri",
]

DEFAULT_REGISTRY_URI = "sqlite:///mlflow.db"

# MLflow's own HTTP client retries 7 times with exponential backoff and waits 120 s per
# request by default, so an unreachable server takes minutes to fail. gray retries itself
# (bounded, below) and tells MLflow not to; users who set these variables keep their values.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 4.0
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
TRANSIENT_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "REQUEST_LIMIT_EXCEEDED",
        "DEADLINE_EXCEEDED",
        "IO_ERROR",
        "ABORTED",
    }
)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")

T = TypeVar("T")


def resolve_registry_uri(plan_uri: str | None, cli_uri: str | None) -> str:
    """The registry to use: the plan's, else $MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`;
    an explicit `--registry-uri` overrides them all.

    The flag wins over the plan because plans usually carry a default
    (`${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}`): someone typing `--registry-uri`, say
    for `gray rollback` from another machine, means that registry, and must neither be
    ignored nor refused.
    """
    return cli_uri or plan_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_REGISTRY_URI


def bound_mlflow_http_retries() -> None:
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


class RegistryClient:
    """An MLflow tracking and registry server, reached through bounded retries and gray's
    error tree."""

    def __init__(self, uri: str, *, retries: int = 3) -> None:
        if retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {retries}")
        self.uri = uri
        self.retries = retries
        self._mlflow: Any = None
        self._lock = threading.Lock()
        bound_mlflow_http_retries()

    @property
    def mlflow(self) -> Any:
        """The underlying `mlflow.MlflowClient`, created on first use (HTTP retries bounded);
        wrap calls in `call` for retries and errors."""
        with self._lock:
            if self._mlflow is None:
                require_store_for(self.uri)
                self._check_local_store()
                from mlflow import MlflowClient

                self._mlflow = self.call(
                    "open the registry",
                    lambda: MlflowClient(tracking_uri=self.uri, registry_uri=self.uri),
                )
            return self._mlflow

    def call(
        self,
        what: str,
        action: Callable[[], T],
        *,
        missing: Callable[[], GrayError] | None = None,
    ) -> T:
        """Run one MLflow call; retry transient failures with bounded backoff.

        Everything MLflow raises leaves as a GrayError naming the registry and the cause;
        with `missing`, a not-found answer leaves as the error it builds.
        """
        delay = BACKOFF_FIRST_SECONDS
        for attempt in itertools.count():
            try:
                return action()
            except GrayError:
                raise
            except Exception as exc:  # the boundary: whatever MLflow raises, one error tree
                not_found = _not_found(exc, missing)
                if not_found is not None:
                    raise not_found from None
                failure, transient = exc, _is_transient(exc)
            if not transient or attempt >= self.retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RegistryError(
                    f"MLflow registry {self.uri}: {what} failed{tries}: {describe_cause(failure)}"
                ) from failure
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        raise AssertionError("unreachable")  # pragma: no cover

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use. With a sqlite registry its
        artifacts go beside the database file, not to ./mlruns of whatever folder gray runs in."""
        found = self.call(
            f"read experiment {name!r}", lambda: self.mlflow.get_experiment_by_name(name)
        )
        if found is not None:
            return str(found.experiment_id)
        location = None
        database = self._sqlite_path()
        if database is not None:
            location = (database.parent / "artifacts").resolve().as_uri()
        try:
            return str(self.mlflow.create_experiment(name, artifact_location=location))
        except Exception:
            # Another writer created it between our two calls.
            found = self.call(
                f"read experiment {name!r}", lambda: self.mlflow.get_experiment_by_name(name)
            )
            if found is None:
                raise
            return str(found.experiment_id)

    # -- the registry calls the package makes -----------------------------------------------

    def registered_model(self, name: str) -> Any:
        return self.call(
            f"read registered model {name!r}",
            lambda: self.mlflow.get_registered_model(name),
            missing=lambda: ModelNotFoundError(
                f"no registered model {name!r} in the registry {self.uri}"
            ),
        )

    def model_version(self, name: str, version: str) -> Any:
        return self.call(
            f"read {name} version {version}",
            lambda: self.mlflow.get_model_version(name, version),
            missing=lambda: ModelNotFoundError(
                f"registered model {name!r} has no version {version} in {self.uri}"
            ),
        )

    def download_uri(self, name: str, version: str) -> str:
        """Where one model version's files are stored (an s3://, gs://, file:// URI)."""
        return self.call(
            f"locate the artifacts of {name} version {version}",
            lambda: self.mlflow.get_model_version_download_uri(name, version),
            missing=lambda: ModelNotFoundError(
                f"registered model {name!r} has no version {version}"
            ),
        )

    def artifact_repository(self, name: str, version: str) -> tuple[str, Any]:
        """(download URI, MLflow artifact repository) of one model version's files."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        location = self.download_uri(name, version)
        repository = get_artifact_repository(location, tracking_uri=self.uri, registry_uri=self.uri)
        return location, repository

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Write `tags` on one version, one call each, in the order given."""
        for key, value in tags.items():
            self.call(
                f"tag {name} version {version}",
                lambda key=key, value=value: self.mlflow.set_model_version_tag(
                    name, version, key, value
                ),
            )

    def _sqlite_path(self) -> Path | None:
        if not self.uri.startswith("sqlite:///"):
            return None
        return Path(self.uri.removeprefix("sqlite:///").split("?", 1)[0])

    def _check_local_store(self) -> None:
        """Refuse a sqlite path that does not exist: MLflow would create an empty registry."""
        path = self._sqlite_path()
        if path is not None and not path.is_file():
            raise ConfigError(
                f"no MLflow database at {path} (registry URI {self.uri}); pass --registry-uri "
                "or set MLFLOW_TRACKING_URI"
            )


def _not_found(exc: Exception, missing: Callable[[], GrayError] | None) -> GrayError | None:
    """The caller's not-found error when MLflow answered that the thing does not exist."""
    from mlflow.exceptions import MlflowException

    if (
        missing is not None
        and isinstance(exc, MlflowException)
        and exc.error_code in NOT_FOUND_CODES
    ):
        return missing()
    return None


def _is_transient(exc: Exception) -> bool:
    """Whether trying again may help: a server busy or unreachable, not a refusal."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in TRANSIENT_CODES
    if isinstance(exc, ConnectionError | TimeoutError | requests.RequestException):
        return True
    return _is_locked_database(exc)


def _is_locked_database(exc: Exception) -> bool:
    """A SQL store's OperationalError (a locked or unreachable database). SQLAlchemy comes
    with the SQL stores only: a client of a remote server may not have it."""
    try:
        import sqlalchemy.exc
    except ImportError:
        return False
    return isinstance(exc, sqlalchemy.exc.OperationalError)


def describe_cause(exc: BaseException) -> str:
    """A one-line cause: the OS error when there is one, else the first line, shortened."""
    from mlflow.exceptions import MlflowException

    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if not isinstance(exc, MlflowException | OSError):
        text = f"{type(exc).__name__}: {text}"
    errno = _ERRNO.search(str(text))
    if errno:
        return errno.group(0).strip()
    first = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    return first if len(first) <= 300 else first[:297] + "..."
