"""The install's extras: declared in pyproject.toml, checked by the commands that need them."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gray.cli.app import app
from gray.controller import extras
from gray.controller.errors import MissingExtraError

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# distribution name -> the module it installs, where the two differ
MODULE_OF = {"scikit-learn": "sklearn", "prometheus-client": "prometheus_client"}
# mlflow's full install is what brings the SQL store's modules
STORE_MODULES = {"mlflow": ("sqlalchemy", "alembic")}


def declared(extra: str) -> set[str]:
    """The modules an extra's requirements stand for, following gray-rollout[...] references."""
    optional = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    modules: set[str] = set()
    for requirement in optional[extra]:
        name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0]
        if name == "gray-rollout":
            for inner in re.findall(r"\[([^\]]+)\]", requirement)[0].split(","):
                modules |= declared(inner.strip())
        else:
            modules |= set(STORE_MODULES.get(name, (MODULE_OF.get(name, name),)))
    return modules


@pytest.mark.parametrize("extra", ["store", "gateway", "aws", "kubernetes", "report", "all"])
def test_the_checked_modules_are_the_declared_ones(extra: str) -> None:
    assert set(extras.EXTRA_MODULES[extra]) <= declared(extra)
    assert declared(extra) - {"mlflow"} <= set(extras.EXTRA_MODULES[extra])


def test_the_core_install_leaves_serving_and_the_store_out() -> None:
    core = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    names = {re.split(r"[<>= ;]", r, maxsplit=1)[0] for r in core}
    assert "mlflow-skinny" in names
    assert not names & {"mlflow", "fastapi", "uvicorn", "pandas", "scikit-learn"}


def hide(monkeypatch: pytest.MonkeyPatch, *hidden: str) -> None:
    """Make `hidden` modules look uninstalled to the extras check."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(extras.importlib.util, "find_spec", find_spec)


def test_a_missing_extra_names_the_modules_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide(monkeypatch, "pandas", "sklearn")
    with pytest.raises(MissingExtraError) as raised:
        extras.require_extra("gateway", "gray gateway serve")
    message = str(raised.value)
    assert "missing: pandas, sklearn" in message
    assert "pip install 'gray-rollout[gateway]'" in message
    assert raised.value.exit_code == 2


def test_a_sql_store_needs_the_store_extra_and_a_server_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hide(monkeypatch, "sqlalchemy")
    with pytest.raises(MissingExtraError, match=r"gray-rollout\[store\]"):
        extras.require_store_for("sqlite:///mlflow.db")
    with pytest.raises(MissingExtraError):
        extras.require_store_for("postgresql+psycopg2://db/mlflow")
    extras.require_store_for("http://mlflow.internal:5000")
    extras.require_store_for("databricks")


def test_gateway_serve_without_the_extra_exits_2_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hide(monkeypatch, "orjson")
    monkeypatch.setenv("GRAY_GATEWAY_TOKEN", "a-token-for-the-test")
    result = CliRunner().invoke(
        app,
        ["gateway", "serve", "--model", "fraud", "--registry-uri", f"sqlite:///{tmp_path}/m.db"],
    )
    assert result.exit_code == 2, result.output
    assert "pip install 'gray-rollout[gateway]'" in result.output
