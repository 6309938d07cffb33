"""Shared CLI plumbing: output formats, error printing and exit codes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from gray.controller.errors import GrayError, PlanError

# Piped or captured output has no terminal width; Rich would assume 80 columns and fold
# every table into slivers. Use $COLUMNS, else a width that fits a rollout table's rows.
PIPED_WIDTH = 200


def _width(stream: TextIO) -> int | None:
    if stream.isatty():
        return None
    return int(os.environ.get("COLUMNS") or 0) or PIPED_WIDTH


console = Console(highlight=False, width=_width(sys.stdout))
error_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))


def version_label(version: str | None) -> str:
    """`v3`, or `(none)` for an alias that pointed nowhere."""
    return f"v{version}" if version else "(none)"


EXIT_CODES_HELP = (
    "Exit codes: 0 done (promoted, or the requested stage reached); 1 rolled back or "
    "aborted; 2 bad input or refused with nothing changed; 3 stopped with traffic held "
    "(approval, pause, --until-stage); 4 lost the endpoint, registry or metrics source "
    "(traffic left as last verified; resumable)."
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OutputOption = typer.Option(
    OutputFormat.text, "--output", "-o", help="text for people, json for machines."
)


def emit_json(payload: Any) -> None:
    """One JSON document (or line) on stdout, flushed so pipelines see it at once."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def fail(error: GrayError, output: OutputFormat = OutputFormat.text) -> NoReturn:
    """Report `error` the way the user asked for and leave with its exit code."""
    if output == OutputFormat.json:
        emit_json({"ok": False, **error.to_dict(), "exit_code": error.exit_code})
    elif isinstance(error, PlanError):
        print_plan_error(error)
    else:
        error_console.print(f"[red]error:[/] {escape(error.message)}", soft_wrap=True)
    raise typer.Exit(error.exit_code)


def print_plan_error(error: PlanError) -> None:
    """Every problem of a plan, one per line, file:line:column first."""
    count = len(error.problems)
    error_console.print(f"[red]✗ {error.path}[/]: {count} problem(s)", soft_wrap=True)
    for problem in error.problems:
        error_console.print(f"  {problem.render()}", markup=False, soft_wrap=True)


@contextmanager
def reported_errors(output: OutputFormat = OutputFormat.text) -> Iterator[None]:
    """Turn any GrayError raised inside into a clean message and exit code."""
    try:
        yield
    except GrayError as error:
        fail(error, output)
