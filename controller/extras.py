"""Which optional parts of the install a command needs, and a clear error when one is missing.

The core install drives rollouts against a remote MLflow server and a running
endpoint. Serving models, a local SQL store and the demo need the extras declared
in pyproject.toml; a command that needs one says which, before it fails deep in
an import.
"""

from __future__ import annotations

import importlib.util

from gray.controller.errors import MissingExtraError

# extra -> the modules that stand for it (keep in step with pyproject.toml).
_STORE = ("sqlalchemy", "alembic")
_SERVING = (
    "fastapi",
    "uvicorn",
    "httptools",
    "orjson",
    "prometheus_client",
    "pandas",
    "sklearn",
    "joblib",
)
_AWS = ("boto3",)
_KUBERNETES = ("kubernetes",)
_REPORT = ("plotly",)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "store": _STORE,
    "gateway": _STORE + _SERVING,
    "aws": _AWS,
    "kubernetes": _KUBERNETES,
    "report": _REPORT,
    "all": _STORE + _SERVING + _AWS + _KUBERNETES + _REPORT,
}

# Tracking/registry URI schemes that MLflow serves from a SQL database in-process.
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def missing_modules(extra: str) -> list[str]:
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, needed_by: str) -> None:
    """Raise MissingExtraError when `extra` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{needed_by} needs gray's {extra!r} extra (missing: {', '.join(missing)}); "
            f"install it with: pip install 'gray-rollout[{extra}]'"
        )


def require_store_for(uri: str) -> None:
    """A SQL MLflow URI is opened in-process, which needs MLflow's full install."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in SQL_SCHEMES:
        require_extra("store", f"an MLflow store at {scheme}://")
