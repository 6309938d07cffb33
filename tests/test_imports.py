"""The package layering holds: the controller and gateway never reach into the CLI,
and the controller's modules import each other without a cycle (counting imports
deferred into functions, which hide a cycle from Python but not from a reader)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"gray.cli": "cli", "gray.controller": "controller", "gray.gateway": "gateway"}


def module_files(package: str) -> dict[str, Path]:
    """Every module of `package` by dotted name (a package by its own name)."""
    folder = ROOT / PACKAGES[package]
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def imported_names(path: Path) -> Iterator[str]:
    """The absolute names `path` imports: `from a.b import c` gives `a.b` and `a.b.c`.

    Imports inside functions count; imports under `if TYPE_CHECKING:` do not, as
    they never run.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        else:
            pending.extend(ast.iter_child_nodes(node))


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` lands in: itself, or the package it names an attribute of."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(package: str) -> dict[str, set[str]]:
    modules = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(n, modules) for n in imported_names(path)}
        graph[name] = {t for t in targets if t is not None and t != name}
    # Importing a module first imports every package above it.
    for name in modules:
        parent = name.rpartition(".")[0]
        if parent in modules and parent != name:
            graph[name].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            # A package importing its own submodules is how packages export names.
            if node.startswith(target + ".") and target in path:
                continue
            if colour.get(target) == 1:
                return [*path[path.index(target) :], target]
            if colour.get(target) is None and (found := visit(target)):
                return found
        path.pop()
        colour[node] = 2
        return None

    for start in sorted(graph):
        if colour.get(start) is None and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["gray.controller", "gray.gateway"])
def test_no_module_reaches_into_the_cli(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in module_files(package).values()
        for name in imported_names(path)
        if name == "gray.cli" or name.startswith("gray.cli.")
    ]
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_the_controller_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph("gray.controller"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
