"""Turning pydantic's validation errors into plan problems with file:line and a suggestion."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from gray.controller.errors import PlanProblem
from gray.controller.plan.source import PlanSource

_EXPECTED = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "model_type": "expected a mapping of fields",
    "model_attributes_type": "expected a mapping of fields",
    "dict_type": "expected a mapping",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
}


def describe_validation_error(
    error: ValidationError, source: PlanSource, filename: str, root: type[BaseModel]
) -> list[PlanProblem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            line, column = source.position(loc, key=True)
            message = _unknown_field(loc, root, source.data)
        elif kind == "missing":
            line, column = source.position(loc[:-1])
            message = f"required field '{loc[-1]}' is missing"
        else:
            line, column = source.position(loc)
            message = _message(kind, item, value)
        problems.append(PlanProblem(filename, line, column, _path(loc), message))
    return problems


def _message(kind: str, item: Any, value: object) -> str:
    got = f", got {value!r}" if not isinstance(value, dict | list) else ""
    if kind == "value_error":
        return str(item["ctx"]["error"])
    if kind == "literal_error":
        expected = item["ctx"]["expected"]
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        hint = _suggest(str(value), options)
        return f"expected one of {', '.join(options)}{got}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(item["ctx"].values()))
        words = {
            "greater_than": "above",
            "greater_than_equal": "at least",
            "less_than": "below",
            "less_than_equal": "at most",
        }[kind]
        return f"expected a value {words} {bound}{got}"
    if kind == "string_pattern_mismatch":
        return f"expected letters, digits, '.', '_' or '-' (starting with a letter or digit){got}"
    if kind == "too_short":
        return (
            "expected at least one entry" if isinstance(value, list) else f"must not be empty{got}"
        )
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _EXPECTED:
        return _EXPECTED[kind] + got
    return str(item["msg"]) + got


def _unknown_field(loc: tuple[Any, ...], root: type[BaseModel], data: Any) -> str:
    name = str(loc[-1])
    model = _model_at(root, loc[:-1], data)
    known = list(model.model_fields) if model else []
    hint = _suggest(name, known)
    if not hint and known:
        hint = f" (known fields: {', '.join(known)})"
    return f"unknown field '{name}'{hint}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _model_at(root: type[BaseModel], loc: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The model class that holds the field at `loc`, following field annotations; a block
    whose model depends on its value (`router:`, by its `type`) says which with `model_for`."""
    current: Any = root
    for index, part in enumerate(loc):
        current = _unwrap(current)
        if hasattr(current, "model_for"):
            current = current.model_for(_value_at(data, loc[:index]))
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        else:
            return None
    current = _unwrap(current)
    if hasattr(current, "model_for"):
        current = current.model_for(_value_at(data, loc))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    """The plan's value at `loc` (None where there is none)."""
    for part in loc:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `tuple[X, ...]` down to X's container or model."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
