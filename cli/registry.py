"""`gray registry`: look at model versions and alias history, bind preprocessors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from gray.cli.output import (
    OutputFormat,
    OutputOption,
    console,
    emit_json,
    reported_errors,
    version_label,
)
from gray.controller.redact import redact

if TYPE_CHECKING:
    from gray.controller.registry import Registry

registry_app = typer.Typer(
    help="Inspect registered model versions, bind preprocessors, read gray's alias history.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RegistryUriOption = typer.Option(
    None,
    "--registry-uri",
    help="MLflow registry URI. Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.",
    show_default=False,
)


def _registry(registry_uri: str | None) -> Registry:
    from gray.controller.registry import Registry, resolve_registry_uri

    return Registry(resolve_registry_uri(None, registry_uri))


@registry_app.command("show")
def show(
    model: str = typer.Argument(..., metavar="MODEL", help="Registered model name."),
    registry_uri: str | None = RegistryUriOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Show every version of MODEL: status, aliases, preprocessor binding and hash, and
    the last rollout that touched it.

    Examples:

    \b
      gray registry show fraud
      gray registry show fraud --registry-uri http://mlflow.internal:5000
      gray registry show fraud --output json | jq '.versions[] | {version, aliases}'
    """
    with reported_errors(output):
        registry = _registry(registry_uri)
        versions = registry.versions(model)
    rows = [
        {**info.to_dict(), "last_rollout": mark.to_dict() if (mark := info.last_rollout) else None}
        for info in versions
    ]
    if output == OutputFormat.json:
        emit_json(
            {"ok": True, "model": model, "registry_uri": redact(registry.uri), "versions": rows}
        )
        return
    console.print(Text(f"{model}  ({redact(registry.uri)})", style="bold"), soft_wrap=True)
    table = Table(box=box.SIMPLE)
    for column, wraps in (
        ("version", False),
        ("status", False),
        ("aliases", False),
        ("preprocessor", True),
        ("sha256", False),
        ("last rollout", True),
    ):
        table.add_column(column, no_wrap=not wraps, overflow="fold")
    for row in rows:
        sha = row["preprocessor_sha256"]
        table.add_row(
            row["version"],
            Text(row["status"], style="green" if row["status"] == "READY" else "yellow"),
            " ".join(f"@{alias}" for alias in row["aliases"]),
            row["preprocessor_binding"] or "-",
            sha[:12] if sha else "-",
            describe_rollout(row["last_rollout"]),
        )
    if not rows:
        console.print(f"{model} has no versions yet.")
        return
    console.print(table)


def describe_rollout(rollout: dict[str, str] | None) -> str:
    if rollout is None:
        return "-"
    parts = [rollout["rollout_id"], rollout["event"], rollout["at"]]
    return " ".join(part for part in parts if part)


@registry_app.command("history")
def history(
    model: str = typer.Argument(..., metavar="MODEL", help="Registered model name."),
    registry_uri: str | None = RegistryUriOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Show every alias move gray made on MODEL, oldest first: when, who, which alias,
    from which version to which, for which rollout and why.

    gray keeps this history in the registry itself (registered-model tags
    gray.alias_move.NNNNNN), so it reads the same from any machine.

    Examples:

    \b
      gray registry history fraud
      gray registry history fraud --output json
    """
    with reported_errors(output):
        registry = _registry(registry_uri)
        moves = registry.history(model)
    if output == OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "model": model,
                "registry_uri": redact(registry.uri),
                "moves": [move.to_dict() for move in moves],
            }
        )
        return
    if not moves:
        console.print(f"gray has not moved any alias of {model} yet.")
        return
    title = f"{model}: alias moves  ({redact(registry.uri)})"
    console.print(Text(title, style="bold"), soft_wrap=True)
    for number, move in enumerate(moves, start=1):
        # One line per move, so the history greps and never wraps mid-word.
        line = Text()
        line.append(f"{number:>4}  {move.at}  ")
        line.append(f"@{move.alias}", style="bold")
        moved = f"{version_label(move.from_version)} -> {version_label(move.to_version)}"
        line.append(f"  {moved}  by {move.actor}")
        if move.rollout_id:
            line.append(f"  rollout {move.rollout_id}")
        if move.reason:
            line.append(f"  {move.reason}")
        console.print(line, soft_wrap=True)


@registry_app.command("bind")
# Long only by its signature and docstring: Typer builds the options and `--help` from them.
def bind(
    model: str = typer.Argument(..., metavar="MODEL", help="Registered model name."),
    version: str = typer.Argument(
        ..., metavar="VERSION", help="The model version to bind (a number)."
    ),
    preprocessor_path: Path | None = typer.Argument(
        None,
        metavar="PREPROCESSOR_PATH",
        help="A pickled/joblib preprocessor file, or a directory holding one.",
        show_default=False,
    ),
    registered_model: str | None = typer.Option(
        None,
        "--registered-model",
        help="Bind a separately registered preprocessor model instead of a file.",
    ),
    preprocessor_ref: str | None = typer.Option(
        None,
        "--preprocessor-version",
        help="With --registered-model: '@alias' or a version number. Default: its latest.",
    ),
    artifact_path: str = typer.Option(
        "preprocessor",
        "--artifact-path",
        help="Where the file goes inside the model version's artifacts.",
    ),
    no_preprocessor: bool = typer.Option(
        False,
        "--none",
        help="Declare that VERSION needs no separate preprocessor (its preprocessing is "
        "inside the model); the gateway then serves it as it is.",
    ),
    registry_uri: str | None = RegistryUriOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Bind a preprocessor to MODEL VERSION: store it with the version and tag the version
    with its sha256, which gray checks before any rollout moves traffic.

    Examples:

    \b
      gray registry bind fraud 7 build/scaler.joblib
      gray registry bind fraud 7 build/preprocessor/
      gray registry bind fraud 7 --registered-model fraud-preprocessor
      gray registry bind fraud 7 --registered-model fraud-preprocessor \\
          --preprocessor-version @challenger
      gray registry bind fraud 7 --none      # a Pipeline: preprocessing inside the model
    """
    from gray.controller.errors import ConfigError

    with reported_errors(output):
        given = [preprocessor_path is not None, registered_model is not None, no_preprocessor]
        if sum(given) != 1:
            raise ConfigError(
                "give PREPROCESSOR_PATH, --registered-model NAME or --none (exactly one)"
            )
        if preprocessor_ref is not None and registered_model is None:
            raise ConfigError("--preprocessor-version goes with --registered-model")
        if preprocessor_path is not None and not preprocessor_path.exists():
            raise ConfigError(f"preprocessor path {preprocessor_path} does not exist")
        bound = _registry(registry_uri).bind(
            model,
            version,
            path=preprocessor_path,
            registered_model=registered_model,
            preprocessor_ref=preprocessor_ref,
            artifact_path=artifact_path,
        )
    if output == OutputFormat.json:
        emit_json(
            {
                "ok": True,
                "model": model,
                "version": version,
                "binding": bound.binding,
                "sha256": bound.sha256,
            }
        )
        return
    said = (
        f"{model} version {version}: declared to need no separate preprocessor"
        if no_preprocessor
        else f"bound {model} version {version} to {bound.binding}, sha256 {bound.sha256}"
    )
    console.print(
        said,
        markup=False,
        soft_wrap=True,
    )
