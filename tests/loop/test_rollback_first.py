"""Which command lines `gray rollback` (and `rollout abort`) serves before the CLI is built."""

from __future__ import annotations

import pytest

from gray.cli.rollback_first import _VALUE_OPTIONS, _plain_rollback

ROLLBACK = _VALUE_OPTIONS["rolled_back"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fraud"], ("fraud", "")),
        (["fraud-2026-ab12", "--reason", "p99 doubled"], ("fraud-2026-ab12", "p99 doubled")),
        (["--reason=pager", "-o", "json", "fraud"], ("fraud", "pager")),
        (["fraud", "--router-url", "http://10.0.0.5:8080"], ("fraud", "")),
    ],
)
def test_plain_rollbacks_are_served_early(argv: list[str], expected: tuple[str, str]) -> None:
    assert _plain_rollback(argv, ROLLBACK) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["fraud", "--to", "previous"],  # moves aliases: the full command
        ["--help"],
        ["fraud", "other"],
        ["fraud", "--reason"],  # a value missing: the full parser says so
        [],
    ],
)
def test_anything_else_is_left_to_the_full_command(argv: list[str]) -> None:
    assert _plain_rollback(argv, ROLLBACK) is None


def test_abort_takes_no_router_url() -> None:
    assert _plain_rollback(["id", "--router-url", "x"], _VALUE_OPTIONS["aborted"]) is None


def test_nothing_heavy_is_imported_before_the_write() -> None:
    # What `gray rollback` loads up to its endpoint write: no MLflow, pandas, numpy,
    # pydantic, Typer or Rich, which cost seconds on a busy machine.
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import gray.cli.app, gray.cli.rollback_first as first\n"
        "first._gateway_router('http://127.0.0.1:9', 'token', 1.0).close()\n"
        "heavy = ('mlflow', 'pandas', 'numpy', 'scipy', 'pydantic', 'typer', 'rich', 'click')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]", loaded
