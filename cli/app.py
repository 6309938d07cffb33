"""The `gray` entry point. Sub-apps are registered here; heavy imports stay inside commands."""

from __future__ import annotations

import typer

app = typer.Typer(name="gray", no_args_is_help=True)


def main() -> None:
    app()
