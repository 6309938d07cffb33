"""The registry of router and metrics types: gray's own first, then installed packages'."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gray.controller.errors import PlanError
from gray.controller.plan.loading import parse_plan
from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES
from gray.controller.routers.gateway_spec import GatewayRouterSpec
from tests.routers.test_plan_blocks import VALID


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path where a test writes a package's module and dist-info."""
    sys.path.insert(0, str(tmp_path))
    ROUTER_TYPES.forget()
    METRICS_TYPES.forget()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("odd_router", None)
        ROUTER_TYPES.forget()
        METRICS_TYPES.forget()


def declare(folder: Path, routers: str) -> None:
    info = folder / "odd_router-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-router\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gray.routers]\n{routers}\n")
    (folder / "odd_router.py").write_text("class NotASpec:\n    pass\n")


def test_only_gray_s_own_types_without_other_packages() -> None:
    assert ROUTER_TYPES.names()[0] == "gateway"
    assert ROUTER_TYPES.load("gateway") is GatewayRouterSpec
    assert ROUTER_TYPES.load("linkerd") is None


def test_gray_s_own_type_wins_over_a_package_s_of_the_same_name(installed: Path) -> None:
    declare(installed, "gateway = odd_router:NotASpec")
    assert ROUTER_TYPES.load("gateway") is GatewayRouterSpec
    assert ROUTER_TYPES.names().count("gateway") == 1
    assert parse_plan(VALID, "p.yaml").router.type == "gateway"


def test_a_type_that_is_no_router_spec_is_a_problem_at_the_block(installed: Path) -> None:
    declare(installed, "odd = odd_router:NotASpec")
    with pytest.raises(PlanError) as caught:
        parse_plan(VALID + "router: {type: odd}\n", "p.yaml")
    [problem] = caught.value.problems
    assert problem.render().startswith(
        "p.yaml:12:9: router: router type 'odd' is not a RouterSpec: <class 'odd_router.NotASpec'>"
    )


def test_a_package_installed_later_is_seen_after_forget(installed: Path) -> None:
    assert "odd" not in ROUTER_TYPES.names()
    declare(installed, "odd = odd_router:NotASpec")
    assert "odd" not in ROUTER_TYPES.names()  # read once per process
    ROUTER_TYPES.forget()
    assert "odd" in ROUTER_TYPES.names()
