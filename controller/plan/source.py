"""Reading a plan file: YAML with positions, `${VAR}` substitution, duplicate keys.

The result is plain Python data plus a map from each field path to the line and
column where it was written, so that every later error can point at the file.

A plan is a page of YAML, and a hostile one must be refused fast and with a
position, not parsed for minutes: the file size, the nesting depth, the number
of aliases (`*name`) and the number of values after aliases are expanded are
capped (an alias bomb of 1 KB would otherwise expand to billions of values), and
an alias that contains itself is a problem, not a RecursionError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from gray.controller.redact import redact

Path_ = tuple[str | int, ...]

MAX_PLAN_BYTES = 256 * 1024  # the largest shipped plan is 3 KB
MAX_DEPTH = 32  # a real plan nests about 8 deep (stages, gates, audience headers)
MAX_ALIASES = 100  # anchors for shared gates or audiences need a handful
MAX_VALUES = 20_000  # values after aliases are expanded; a 100-stage plan has ~5,000
MIN_HIDDEN_LENGTH = 4  # shorter environment values (`5m`, `true`) are shown as they are

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
    # Values taken from the environment, with the `${NAME}` they came from: a
    # problem message shows the reference, never the value (often a secret).
    substituted: dict[str, str] = field(default_factory=dict)

    def hide_substituted(self, message: str) -> str:
        for value in sorted(self.substituted, key=len, reverse=True):
            message = message.replace(value, self.substituted[value])
        return message

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


def substitute(
    text: str, environ: Mapping[str, str], used: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
    Returns the text and the names of unset variables that had no default; `used`
    collects each variable taken from the environment with its value."""
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
        if used is not None:
            used[name] = value
        return value

    return _VARIABLE.sub(replace, text), missing


class PlanLimitError(yaml.MarkedYAMLError):
    """A plan beyond what any real plan needs: too deep, too many aliases, too many values."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _PlanLoader(yaml.SafeLoader):
    """The safe loader, composing at most MAX_DEPTH levels and MAX_ALIASES aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise PlanLimitError(
                    f"more than {MAX_ALIASES} aliases (*name); write the plan out plainly", mark
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise PlanLimitError(f"values nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


def _unreadable(text: str, error: yaml.reader.ReaderError) -> PlanSource:
    """A character YAML refuses (a control character, say), at its line and column."""
    line, column = _line_column(text, error.position)
    character = error.character if isinstance(error.character, int) else ord(error.character)
    problem = f"not valid YAML: character U+{character:04X} is not allowed ({error.reason})"
    return PlanSource(data=None, problems=[SourceProblem((), line, column, problem)])


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


_FLOW_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|(?:^|(?<=\s))#[^\n]*|[\[\]{}]', re.MULTILINE
)


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """Where `[`/`{` brackets first nest deeper than MAX_DEPTH, if they do.

    PyYAML's scanner looks ahead over every unclosed bracket before the composer
    can count levels, in time that grows with the square of their number; this
    cheap pass over the text refuses such a plan first. Quoted text and comments
    are skipped.
    """
    depth = 0
    for token in _FLOW_TOKEN.finditer(text):
        kind = token.group()
        if kind in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return _line_column(text, token.start())
        elif kind in ("]", "}"):
            depth = max(depth - 1, 0)
    return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _TooManyValues(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def read_plan_source(text: str, environ: Mapping[str, str] | None = None) -> PlanSource:
    env = os.environ if environ is None else environ
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_PLAN_BYTES:
        problem = (
            f"the file is larger than {MAX_PLAN_BYTES // 1024} KB ({size:,} bytes); "
            "a plan is a page of YAML"
        )
        return PlanSource(data=None, problems=[SourceProblem((), 1, 1, problem)])
    deep = _flow_too_deep(text)
    if deep is not None:
        problem = f"values nested deeper than {MAX_DEPTH} levels"
        return PlanSource(data=None, problems=[SourceProblem((), *deep, problem)])
    try:
        loader = _PlanLoader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        return _unreadable(text, exc)
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            return _unreadable(text, exc)
        except PlanLimitError as exc:
            mark = exc.problem_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            return PlanSource(
                data=None, problems=[SourceProblem((), line, column, str(exc.problem))]
            )
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
        try:
            source.data = _Builder(source, loader, env).build(node, ())
        except _TooManyValues as exc:
            line, column = _mark(exc.node)
            problem = (
                f"the plan expands to more than {MAX_VALUES:,} values (aliases repeat "
                "what they name); write it out plainly"
            )
            return PlanSource(data=None, problems=[SourceProblem((), line, column, problem)])
        return source
    finally:
        loader.dispose()


class _Builder:
    """Plain data from the composed nodes, with the position of every value and key."""

    def __init__(self, source: PlanSource, loader: yaml.SafeLoader, env: Mapping[str, str]):
        self.source = source
        self.loader = loader
        self.env = env
        self.values = 0
        self.open: set[int] = set()  # collections being built: an alias to one is a cycle

    def problem(self, path: Path_, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        self.source.problems.append(SourceProblem(path, line, column, message))

    def build(self, node: yaml.Node, path: Path_) -> object:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooManyValues(node)
        self.source.value_marks[path] = _mark(node)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.open:
                self.problem(path, node, "an alias refers to itself (the value contains itself)")
                return None
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, path)
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, object]:
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(path, key_node, "a key must be a plain name, not a list or mapping")
                continue
            key = self.scalar(key_node, path)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in result:
                first_line = self.source.key_marks[child][0]
                self.problem(
                    child, key_node, f"'{key}' is given twice (first on line {first_line})"
                )
                continue
            self.source.key_marks[child] = _mark(key_node)
            result[key] = self.build(value_node, child)
        return result

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> object:
        if "$" in node.value:
            used: dict[str, str] = {}
            value, missing = substitute(node.value, self.env, used)
            for name, text in used.items():
                if len(text) >= MIN_HIDDEN_LENGTH:
                    # Problems are redacted when made: hide the redacted form too.
                    for shown in (text, redact(text)):
                        self.source.substituted[shown] = f"${{{name}}}"
            for name in missing:
                self.problem(
                    path,
                    node,
                    f"environment variable {name} is not set and has no default "
                    f"(write ${{{name}:-default}} to give one)",
                )
            if node.style is None:
                # A plain scalar: resolve its type again from the substituted text,
                # so `${N:-100}` is an integer just as `100` is.
                tag = self.loader.resolve(yaml.ScalarNode, value, (True, False))
            else:
                tag = "tag:yaml.org,2002:str"
            node = yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, node.style)
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            # A number of thousands of digits, a date that does not exist, bad base64:
            # the text stays, and the problem says why it could not be read.
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(path, node, f"cannot read {_shown(node.value)}: {reason}")
            return node.value


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else f"{text[:20]}…{text[-10:]}")
