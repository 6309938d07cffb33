"""Reading a plan file: YAML with positions, `${VAR}` substitution, duplicate keys.

The result is plain Python data plus a map from each field path to the line and
column where it was written, so that every later error can point at the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

Path_ = tuple[str | int, ...]

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class SourceProblem:
    path: Path_
    line: int | None
    column: int | None
    message: str


@dataclass
class PlanSource:
    """A parsed plan file: its data and where each value and key was written."""

    data: object
    value_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[SourceProblem] = field(default_factory=list)

    def position(self, path: Path_, *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of `path`, or of its nearest written parent."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return marks[probe]
            if not key and probe in self.key_marks:
                return self.key_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), (1, 1))


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
    Returns the text and the names of unset variables that had no default."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    return _VARIABLE.sub(replace, text), missing


def read_plan_source(text: str, environ: Mapping[str, str] | None = None) -> PlanSource:
    env = os.environ if environ is None else environ
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            column = mark.column + 1 if mark else None
            problem = f"not valid YAML: {exc.problem or exc}"
            return PlanSource(data=None, problems=[SourceProblem((), line, column, problem)])
        if node is None:
            return PlanSource(
                data=None, problems=[SourceProblem((), 1, 1, "the file is empty; expected a plan")]
            )
        source = PlanSource(data=None)
        source.data = _build(node, (), source, loader, env)
        return source
    finally:
        loader.dispose()


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(
    node: yaml.Node,
    path: Path_,
    source: PlanSource,
    loader: yaml.SafeLoader,
    env: Mapping[str, str],
) -> object:
    source.value_marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in result:
                line, column = _mark(key_node)
                first_line = source.key_marks[child][0]
                source.problems.append(
                    SourceProblem(
                        child, line, column, f"'{key}' is given twice (first on line {first_line})"
                    )
                )
                continue
            source.key_marks[child] = _mark(key_node)
            result[key] = _build(value_node, child, source, loader, env)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), source, loader, env)
            for index, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    if "$" in node.value:
        value, missing = substitute(node.value, env)
        for name in missing:
            line, column = _mark(node)
            source.problems.append(
                SourceProblem(
                    path,
                    line,
                    column,
                    f"environment variable {name} is not set and has no default "
                    f"(write ${{{name}:-default}} to give one)",
                )
            )
        if node.style is None:
            # A plain scalar: resolve its type again from the substituted text,
            # so `${N:-100}` is an integer just as `100` is.
            tag = loader.resolve(yaml.ScalarNode, value, (True, False))
        else:
            tag = "tag:yaml.org,2002:str"
        node = yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
    return loader.construct_object(node, deep=True)
