"""The `gray` entry point. Sub-apps are built on first use; heavy imports stay inside commands.

`gray rollback` is the one command where start-up time is user-facing: its
endpoint write is made (by `rollback_first`) before the command line interface
is even imported.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP_TEMPLATE = """gray rolls machine-learning models out stage by stage, judges each stage with
anytime-valid statistical gates, and rolls back on its own when the candidate is worse.

Examples:

\b
  gray demo                                   the whole story on this machine
  gray plan validate plans/*.yaml             check plans (--output json for CI)
  gray plan show plans/incremental.yaml --rps 200
  gray rollout start plans/incremental.yaml   run a rollout with a live display
  gray rollout status --watch                 follow the running rollouts
  gray rollback fraud --reason "p99 spike"    the big red button, from any machine
  gray watch plan.yaml --listen 0.0.0.0:8090  start a rollout when @challenger moves

{exit_codes}
"""


@cache
def build_app() -> typer.Typer:
    """The whole command tree (imports Typer, Rich and every command module)."""
    import typer

    from gray.cli.demo import demo
    from gray.cli.haproxy import haproxy_app
    from gray.cli.output import EXIT_CODES_HELP
    from gray.cli.plan import plan_app
    from gray.cli.registry import registry_app
    from gray.cli.retry import retry
    from gray.cli.rollback import rollback
    from gray.cli.rollout import rollout_app
    from gray.cli.watch import watch
    from gray.gateway.cli import gateway_app

    app = typer.Typer(
        name="gray",
        help=HELP_TEMPLATE.format(exit_codes=EXIT_CODES_HELP),
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(plan_app, name="plan")
    rollout_app.command("retry", help=retry.__doc__)(retry)
    app.add_typer(rollout_app, name="rollout")
    app.command("watch", help=watch.__doc__)(watch)
    app.command("demo")(demo)
    app.add_typer(registry_app, name="registry")
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(haproxy_app, name="haproxy")
    app.command("rollback", help=rollback.__doc__)(rollback)

    def print_version(value: bool) -> None:
        from importlib.metadata import PackageNotFoundError, version

        if value:
            try:
                typer.echo(f"gray {version('gray-rollout')}")
            except PackageNotFoundError:
                typer.echo("gray (not installed)")
            raise typer.Exit(0)

    @app.callback()
    def root(
        show_version: bool = typer.Option(
            False,
            "--version",
            help="Print the version and exit.",
            callback=print_version,
            is_eager=True,
        ),
    ) -> None:
        """gray: progressive rollouts for machine-learning models."""

    return app


def __getattr__(name: str) -> object:
    """`from gray.cli.app import app` builds the command tree on first use."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from gray.controller.redact import install_log_redaction

    install_log_redaction()  # no log line of this process (MLflow's, httpx's) shows a credential
    arguments = sys.argv[1:]
    if arguments[:1] == ["rollback"]:
        from gray.cli.rollback_first import write_first

        write_first(arguments[1:])
    elif arguments[:2] == ["rollout", "abort"]:
        from gray.cli.rollback_first import write_first

        write_first(arguments[2:], kind="aborted")
    build_app()()
