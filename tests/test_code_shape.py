"""Code a newcomer can read: no class over 300 lines and no function over 60 lines,
unless a comment starting `# Long` (on the lines just above it, or in its body) says
why it must be."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "controller", "gateway", "demo")
LIMITS = {ast.ClassDef: 300, ast.FunctionDef: 60, ast.AsyncFunctionDef: 60}
MARK = "# Long"


def too_long(path: Path, root: Path = ROOT) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
        limit = LIMITS.get(type(node))
        if limit is None:
            continue
        assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        explained = any(
            line.strip().startswith(MARK) for line in lines[max(first - 4, 0) : node.end_lineno]
        )
        if length > limit and not explained:
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_long_classes_and_functions_say_why() -> None:
    offenders = [
        problem
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for problem in too_long(path)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_a_long_function_and_its_reason(tmp_path: Path) -> None:
    body = "\n".join(f"    x{n} = {n}" for n in range(70))
    silent = tmp_path / "silent.py"
    silent.write_text(f"def f() -> None:\n{body}\n")
    explained = tmp_path / "explained.py"
    explained.write_text(f"# Long because it is a test.\ndef f() -> None:\n{body}\n")
    assert too_long(silent, tmp_path) == ["silent.py:1 f: 71 lines"]
    assert too_long(explained, tmp_path) == []
