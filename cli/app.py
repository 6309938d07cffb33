"""The `gray` entry point. Sub-apps are registered here; heavy imports stay inside commands."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer

from gray.cli.demo import demo
from gray.cli.gateway import gateway_app
from gray.cli.output import EXIT_CODES_HELP
from gray.cli.plan import plan_app
from gray.cli.registry import registry_app
from gray.cli.rollback import rollback
from gray.cli.rollout import rollout_app

HELP = f"""gray rolls machine-learning models out stage by stage, judges each stage with
anytime-valid statistical gates, and rolls back on its own when the candidate is worse.

Examples:

\b
  gray demo                                   the whole story on this machine
  gray plan validate plans/*.yaml             check plans (--output json for CI)
  gray plan show plans/incremental.yaml --rps 200
  gray rollout start plans/incremental.yaml   run a rollout with a live display
  gray rollout status --watch                 follow the running rollouts
  gray rollback fraud --reason "p99 spike"    the big red button, from any machine

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    name="gray",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(plan_app, name="plan")
app.add_typer(rollout_app, name="rollout")
app.command("demo")(demo)
app.add_typer(registry_app, name="registry")
app.add_typer(gateway_app, name="gateway")
app.command("rollback", help=rollback.__doc__)(rollback)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"gray {version('gray-rollout')}")
        except PackageNotFoundError:
            typer.echo("gray (not installed)")
        raise typer.Exit(0)


@app.callback()
def root(
    show_version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """gray: progressive rollouts for machine-learning models."""


def main() -> None:
    app()
