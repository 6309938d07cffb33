"""The README's promises: its test command is what CI runs, and every command it names exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gray.cli.app import app

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_line = next(
        line for line in README.splitlines() if "pytest" in line and "pip install" in line
    )
    assert test_line.strip() in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_the_first_two_commands_are_the_demo_and_the_tests() -> None:
    commands = [
        line
        for line in README.split("## Two commands", 1)[1].split("##", 1)[0].splitlines()
        if line.startswith("python3 -m venv")
    ]
    assert len(commands) == 2
    assert commands[0].endswith("gray demo") and "pytest" in commands[1]


def _readme_commands() -> list[list[str]]:
    found = set()
    for match in re.finditer(r"`(gray [a-z][^`]*)`", README):
        words = shlex.split(match.group(1).replace("|", " "))
        path = [w for w in words[1:3] if re.fullmatch(r"[a-z]+", w)]
        found.add(tuple(path))
    return [list(p) for p in sorted(found) if p]


@pytest.mark.parametrize("command", _readme_commands(), ids=lambda c: " ".join(c))
def test_every_command_in_the_readme_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    if result.exit_code != 0 and len(command) == 2:
        # `gray rollback fraud`: the second word is an argument, not a sub-command.
        result = CliRunner().invoke(app, [command[0], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
