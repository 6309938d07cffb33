"""The fakes in tests/fakes.py and the real adapters keep the same contracts.

Every test that drives the loop with a fake trusts that the fake can stand in for the
real adapter. These tests fail when the two diverge: each fake and each real adapter
implements its seam's protocol method by method (names, parameters, defaults), and the
code behind each seam calls nothing the protocol does not declare.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gray.controller import metrics, routers
from gray.controller.clock import Clock, SystemClock
from gray.controller.endpoint_actions import Promoter
from gray.controller.journal import RemoteJournal
from gray.controller.journal.background import BackgroundRemote
from gray.controller.journal.mlflow_run import MlflowJournal
from gray.controller.metrics.base import MetricsSource
from gray.controller.plugins import METRICS_TYPES, ROUTER_TYPES
from gray.controller.registry import Registry
from gray.controller.routers.base import FleetRouter, Router
from tests.fakes import (
    FakeClock,
    FakeMetrics,
    FakeRegistry,
    FakeRemoteJournal,
    FakeRouter,
)

CONTROLLER = Path(__file__).resolve().parents[1] / "controller"


def protocol_methods(protocol: type) -> list[str]:
    return sorted(
        name
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    )


def signature_problems(protocol: type, implementation: type) -> list[str]:
    """How `implementation` fails to accept every call `protocol` allows, one line each."""
    problems = []
    for name in protocol_methods(protocol):
        method = getattr(implementation, name, None)
        if not callable(method):
            problems.append(f"{implementation.__name__} has no method {name}")
            continue
        declared = inspect.signature(getattr(protocol, name))
        problems += [
            f"{implementation.__name__}.{name}: {problem}"
            for problem in _call_problems(declared, inspect.signature(method))
        ]
    return problems


def _call_problems(declared: inspect.Signature, actual: inspect.Signature) -> list[str]:
    wanted = [p for p in declared.parameters.values() if p.name != "self"]
    given = {p.name: p for p in actual.parameters.values() if p.name != "self"}
    positional = [
        p.name
        for p in actual.parameters.values()
        if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    problems = []
    for index, param in enumerate(wanted):
        mine = given.get(param.name)
        if mine is None:
            problems.append(f"lacks parameter {param.name!r}")
            continue
        if param.kind is param.POSITIONAL_OR_KEYWORD and positional[index : index + 1] != [
            param.name
        ]:
            problems.append(f"takes {param.name!r} at another position")
        if param.kind is param.KEYWORD_ONLY and mine.kind not in (
            mine.KEYWORD_ONLY,
            mine.POSITIONAL_OR_KEYWORD,
        ):
            problems.append(f"cannot take {param.name!r} by keyword")
        if param.default is not param.empty and mine.default is mine.empty:
            problems.append(f"requires {param.name!r}, which callers may leave out")
    for name, mine in given.items():
        extra = name not in {p.name for p in wanted}
        variadic = mine.kind in (mine.VAR_POSITIONAL, mine.VAR_KEYWORD)
        if extra and not variadic and mine.default is mine.empty:
            problems.append(f"requires {name!r}, which the protocol does not pass")
    return problems


def adapter_classes(types: Any, package: ModuleType) -> list[type]:
    """The adapter each registered type's spec builds, named by its `build` annotation and
    found among the package's modules (specs import their adapter only when they build)."""
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]
    classes = []
    for name in types.names():
        annotation = str(inspect.signature(types.load(name).build).return_annotation)
        for built in annotation.split(" | "):  # a type may build one of several adapters
            found = [
                getattr(m, built) for m in modules if isinstance(getattr(m, built, None), type)
            ]
            assert found, f"no class {built} (what type {name!r} builds) in {package.__name__}"
            classes.append(found[0])
    return classes


SEAMS: list[tuple[type, list[type]]] = [
    (Router, [FakeRouter, *adapter_classes(ROUTER_TYPES, routers)]),
    (MetricsSource, [FakeMetrics, *adapter_classes(METRICS_TYPES, metrics)]),
    (Promoter, [FakeRegistry, Registry]),
    (RemoteJournal, [FakeRemoteJournal, MlflowJournal, BackgroundRemote]),
    (Clock, [FakeClock, SystemClock]),
]


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [(protocol, cls) for protocol, classes in SEAMS for cls in classes],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_each_fake_and_each_adapter_implements_its_seam(
    protocol: type, implementation: type
) -> None:
    assert signature_problems(protocol, implementation) == []


def test_the_checker_sees_a_missing_method_a_renamed_parameter_and_a_new_required_one() -> None:
    class Drifted:
        def apply(self, route: Any, lease_: Any, ttl: float | None = None) -> Any: ...
        def renew(self, lease: Any, ttl: float, why: str) -> Any: ...
        def read(self, fresh: bool) -> Any: ...
        def rollback(self, lease: Any) -> Any: ...

    assert sorted(signature_problems(Router, Drifted)) == [
        "Drifted has no method ensure_loaded",
        "Drifted.apply: lacks parameter 'lease'",
        "Drifted.apply: requires 'lease_', which the protocol does not pass",
        "Drifted.read: requires 'fresh', which the protocol does not pass",
        "Drifted.renew: requires 'why', which the protocol does not pass",
    ]


def called_methods(path: Path, receivers: set[str]) -> set[str]:
    """Every method called on `self.X` or a local `X` for X in `receivers`, in `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name):
            name = owner.attr if owner.value.id == "self" else None
        else:
            name = owner.id if isinstance(owner, ast.Name) else None
        if name in receivers:
            found.add(node.func.attr)
    return found


@pytest.mark.parametrize(
    ("module", "receivers", "protocol"),
    [
        ("endpoint_actions.py", {"registry"}, Promoter),
        ("alias_drift.py", {"registry"}, Promoter),
        # a fleet (`FleetRouter`, checked with isinstance) is asked to repair too
        ("endpoint_actions.py", {"router"}, (Router, FleetRouter)),
        ("runner.py", {"router"}, Router),
        ("endpoint_actions.py", {"metrics"}, MetricsSource),
        ("runner.py", {"metrics"}, MetricsSource),
        ("runner.py", {"clock"}, Clock),
        ("endpoint_actions.py", {"clock"}, Clock),
        ("journal/merged.py", {"remote"}, RemoteJournal),
        ("journal/sync.py", {"remote"}, RemoteJournal),
        ("journal/background.py", {"remote"}, RemoteJournal),
    ],
)
def test_the_code_behind_a_seam_calls_only_what_its_protocol_declares(
    module: str, receivers: set[str], protocol: type | tuple[type, ...]
) -> None:
    called = called_methods(CONTROLLER / module, receivers)
    assert called, f"{module} calls nothing on {receivers}: the check reads the wrong names"
    protocols = protocol if isinstance(protocol, tuple) else (protocol,)
    declared = {name for each in protocols for name in protocol_methods(each)}
    assert called <= declared, called - declared
