"""`gray watch PLAN`: start a rollout when the plan's candidate alias moves."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from gray.cli.output import OutputFormat, OutputOption, console, emit_json, reported_errors
from gray.controller.errors import EXIT_BAD_INPUT, EXIT_OK, ConfigError

if TYPE_CHECKING:
    from gray.controller.watch.watcher import Emit, Watcher

DEFAULT_SECRET_ENV = "GRAY_WEBHOOK_SECRET"
MIN_INTERVAL_SECONDS = 0.1
MAX_INTERVAL_SECONDS = 3600.0

WATCH_HELP = f"""Watch the plan's candidate alias and start a rollout when it moves.

At every --interval, and at once when MLflow's registry webhook says the alias was set
(with --listen), the watcher reads the alias. It starts `gray rollout start PLAN` in the
background when the alias names a new version that is READY and has a bound
preprocessor (or is declared to need none), and no rollout of the model is running.
A version whose rollout was rolled back, aborted or reverted is not started again:
`gray rollout retry ID` does that on request. An alias moved while a rollout runs is
journaled by that rollout, as always; the watcher starts the newest version after it.

--listen HOST:PORT accepts MLflow's webhooks (`model_version_alias.created`) on
POST /webhook and answers GET /health. Deliveries must be signed with the secret in
${DEFAULT_SECRET_ENV} (or the variable --secret-env names; a file with `_FILE`): an
unsigned, badly signed or stale delivery (over 300 s) is refused with 401, a replayed
one with 409, each with a JSON reason. Create the webhook with the same secret:

\b
  MlflowClient().create_webhook(name="gray-watch", url="https://watch.internal/webhook",
      events=["model_version_alias.created"], secret=SECRET)

Examples:

\b
  gray watch plans/incremental.yaml                         poll every 30 s
  gray watch plan.yaml --interval 10s --listen 0.0.0.0:8090 poll, and take webhooks
  gray watch plan.yaml --once --output json                 look once (cron, CI)

With --output json every decision, start and refused delivery is one JSON line.

Exit codes: 0 looked (a rollout started, or none was due; a service stopped by SIGTERM
or Ctrl-C); 2 bad input (plan, options, missing secret), or with --once the start was
refused by its preflight (nothing changed); 4 with --once, the registry or journal did
not answer (a service reports it and looks again at the next interval).
"""


def watch(
    plan_path: Path = typer.Argument(..., metavar="PLAN", help="The rollout plan."),
    once: bool = typer.Option(False, "--once", help="Look once, start if due, and exit."),
    interval: str = typer.Option("30s", "--interval", help="Time between looks (100ms to 1h)."),
    listen: str | None = typer.Option(
        None, "--listen", metavar="HOST:PORT", help="Accept MLflow's registry webhooks here."
    ),
    secret_env: str = typer.Option(
        DEFAULT_SECRET_ENV, "--secret-env", help="The variable holding the webhook secret."
    ),
    registry_uri: str | None = typer.Option(
        None,
        "--registry-uri",
        help="MLflow registry (default: the plan's, $MLFLOW_TRACKING_URI, or sqlite:///mlflow.db).",
    ),
    output: OutputFormat = OutputOption,
) -> None:
    from gray.controller import lookup
    from gray.controller.options import duration_option
    from gray.controller.plan.loading import load_plan
    from gray.controller.watch.watcher import Watcher, candidate_alias, controller_starter

    refused: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        if event["event"] == "start_refused":
            refused.append(event)
        _print_event(event, output)

    with reported_errors(output):
        seconds = duration_option("--interval", interval)
        if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
            raise ConfigError(f"--interval must be between 100ms and 1h, got {interval!r}")
        if once and listen:
            raise ConfigError("--listen runs a service and --once looks once; choose one")
        plan = load_plan(plan_path)
        candidate_alias(plan)
        address = _address(listen) if listen else None
        secret = _secret(secret_env) if listen else None
        registry = lookup.open_registry(plan, registry_uri)
        journal = lookup.open_journal(registry, _warn)
        starter = controller_starter(plan_path.resolve(), plan.model.name, registry_uri)
        watcher = Watcher(plan, registry, journal, starter, emit, seconds)
        if once:
            watcher.check("once")
            raise typer.Exit(EXIT_BAD_INPUT if refused else EXIT_OK)
        _serve(watcher, address, secret, emit)
    raise typer.Exit(EXIT_OK)


watch.__doc__ = WATCH_HELP


def _serve(
    watcher: Watcher, address: tuple[str, int] | None, secret: str | None, emit: Emit
) -> None:
    """Run the watcher (and its webhook listener) until SIGTERM or Ctrl-C."""
    from gray.controller.watch.listener import ListenerSettings, WebhookListener

    listener = None
    if address is not None and secret is not None:
        settings = ListenerSettings(secret, watcher.plan.model.name, watcher.candidate_ref[1:])
        try:
            listener = WebhookListener(
                address[0], address[1], settings, watcher.nudge, watcher.status, emit
            ).start()
        except OSError as exc:
            raise ConfigError(f"--listen {address[0]}:{address[1]}: {exc.strerror}") from None
        emit({"event": "listening", "url": f"{listener.address}/webhook"})

    def stop(signum: int, frame: FrameType | None) -> None:
        # Raised where the main thread is (a look, the wait between looks): taking the
        # watcher's locks here could deadlock on one the interrupted code holds.
        raise _Terminated

    signal.signal(signal.SIGTERM, stop)
    try:
        watcher.run()
    except (KeyboardInterrupt, _Terminated):
        # A rollout being started goes on by itself: its controller is its own process.
        watcher.stop()
    finally:
        if listener is not None:
            listener.stop()


class _Terminated(BaseException):
    """SIGTERM: a service manager stops the watcher. A BaseException, like Ctrl-C's
    KeyboardInterrupt, so that no `except Exception` on the way (a retry loop) takes it."""


def _address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen takes HOST:PORT, e.g. 127.0.0.1:8090; got {listen!r}")
    return host.strip("[]"), int(port)


def _secret(variable: str) -> str:
    from gray.gateway.settings import token_from_env

    secret = token_from_env(variable=variable)
    if not secret:
        raise ConfigError(
            f"--listen needs the webhook secret in ${variable} (or a file named by "
            f"${variable}_FILE): MLflow signs each delivery with it, and unsigned ones are refused"
        )
    return secret


def _warn(text: str) -> None:
    from gray.cli.rollout import _warn as warn

    warn(text)


def _print_event(event: dict[str, Any], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        emit_json({"at": time.time(), **event})
        return
    stamp = time.strftime("%H:%M:%S")
    kind = event["event"]
    detail = event.get("reason") or event.get("url") or event.get("ignored") or ""
    if kind == "decision":
        kind = f"{event['action']} ({event['trigger']})"
    elif kind == "webhook":
        detail = f"delivery {event['delivery_id']}: " + (
            f"ignored, {event['ignored']}" if event["ignored"] else "the alias was set; looking"
        )
    console.print(f"{stamp} {kind}: {detail}", markup=False, soft_wrap=True)
