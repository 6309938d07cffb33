"""The gateway's command line: `gray gateway ...` and `python -m gray.gateway ...` run the
built-in serving endpoint and read its prediction log."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gray.controller.errors import ConfigError, GrayError

gateway_app = typer.Typer(
    name="gateway", help="The built-in serving endpoint.", no_args_is_help=True
)


def _fail(error: GrayError) -> typer.Exit:
    typer.secho(f"error: {error.message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=error.exit_code)


# Long because each of the gateway's settings is an option, and Typer declares options as
# parameters; the body only turns them into GatewaySettings and starts the server.
@gateway_app.command("serve")
def serve(
    model: str = typer.Option(..., "--model", help="Registered model name in MLflow."),
    registry_uri: str | None = typer.Option(
        None,
        "--registry-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow registry URI (default: $MLFLOW_TRACKING_URI).",
    ),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    state_dir: Path = typer.Option(
        Path(".gray/gateway"), "--state-dir", help="Route in force and prediction log."
    ),
    baseline: str = typer.Option(
        "@champion", "--baseline", help="Version served before any route is set (alias or number)."
    ),
    slo_edges: str | None = typer.Option(
        None, "--slo-edges", help="Latency edges to count slow requests over, e.g. 100ms,250ms."
    ),
    routing_header: str = typer.Option(
        "X-User-Id", "--routing-header", help="Header that keys sticky routing (else client IP)."
    ),
    override_cidr: list[str] = typer.Option(
        [], "--override-cidr", help="Networks allowed to force a version with X-Model-Version."
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Serve the admin API without a token (loopback only)."
    ),
    forwarded_allow_ips: str = typer.Option(
        "127.0.0.1", "--forwarded-allow-ips", help="Proxies trusted for X-Forwarded-For."
    ),
    predict_threads: int = typer.Option(
        1,
        "--predict-threads",
        help="Worker threads per version. Keep 1 for CPU-bound models (the GIL makes more "
        "threads slower); raise it for models that wait on I/O.",
    ),
    batch_size: int = typer.Option(
        1,
        "--batch-size",
        help="Predict requests that queue for a version together, up to this many per call "
        "(1: off). Only for models that answer a row the same in any company.",
    ),
    http_parser: str = typer.Option(
        "auto",
        "--http",
        help="HTTP/1.1 parser: httptools (C, faster), h11 (pure Python), or auto (httptools "
        "when installed).",
    ),
    mirror_queue: int = typer.Option(
        256, "--mirror-queue", help="Mirrored requests in flight before more are dropped."
    ),
    log_max_bytes: int = typer.Option(50 * 1024 * 1024, "--log-max-bytes"),
    log_backups: int = typer.Option(5, "--log-backups"),
    feedback_window: int = typer.Option(
        50_000, "--feedback-window", help="Recent answers kept for late labels."
    ),
    max_body: str = typer.Option(
        "16MB", "--max-body", help="Largest request body; larger ones are refused with 413."
    ),
    max_connections: int = typer.Option(
        1000,
        "--max-connections",
        help="Open connections at most; one more is answered 503 too_many_connections.",
    ),
    header_timeout: str = typer.Option(
        "10s", "--header-timeout", help="Time a connection has to send a request's headers."
    ),
    idle_timeout: str = typer.Option(
        "5s", "--idle-timeout", help="A kept-alive connection with no request is closed after it."
    ),
    verify_interval: str = typer.Option(
        "30s",
        "--verify-interval",
        help="How often the registry's preprocessor tags of loaded versions are read again.",
    ),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: bool = typer.Option(False, "--access-log"),
) -> None:
    """Serve a registered model's versions and split traffic between them.

    The admin token comes from $GRAY_GATEWAY_TOKEN; without one the gateway
    starts only on loopback with --insecure-no-auth. Scoped tokens:
    $GRAY_GATEWAY_FEEDBACK_TOKEN (POST /feedback only) and $GRAY_GATEWAY_STATS_TOKEN
    (read-only: route, versions, stats, /metrics, /health?model=). Each may be read
    from a file instead: $GRAY_GATEWAY_TOKEN_FILE and so on. It serves the version of
    --baseline (default @champion) until a rollout sets a route; the route in
    force is kept in --state-dir and restored on restart.

    Examples:

    \b
      GRAY_GATEWAY_TOKEN=s3cret gray gateway serve --model fraud --port 8080
      gray gateway serve --model fraud --insecure-no-auth --slo-edges 100ms,250ms
      gray gateway serve --model fraud --registry-uri http://mlflow:5000 \\
          --host 0.0.0.0 --state-dir /var/lib/gray-gateway
    """
    from gray.controller.options import duration_option
    from gray.gateway.settings import (
        FEEDBACK_TOKEN_ENV,
        STATS_TOKEN_ENV,
        GatewaySettings,
        parse_size,
        parse_slo_edges,
        token_from_env,
    )

    try:
        durations = {
            option: duration_option(option, text)
            for option, text in (
                ("--header-timeout", header_timeout),
                ("--idle-timeout", idle_timeout),
                ("--verify-interval", verify_interval),
            )
        }
        try:
            max_body_bytes = parse_size(max_body)
        except ConfigError as error:
            raise ConfigError(f"--max-body: {error.message}") from None
        settings = GatewaySettings(
            model_name=model,
            state_dir=state_dir,
            registry_uri=registry_uri,
            host=host,
            port=port,
            token=token_from_env(),
            feedback_token=token_from_env(variable=FEEDBACK_TOKEN_ENV),
            stats_token=token_from_env(variable=STATS_TOKEN_ENV),
            max_body_bytes=max_body_bytes,
            max_connections=max_connections,
            header_timeout=durations["--header-timeout"],
            idle_timeout=durations["--idle-timeout"],
            verify_interval=durations["--verify-interval"],
            insecure_no_auth=insecure_no_auth,
            baseline=baseline,
            slo_edges=parse_slo_edges(slo_edges),
            routing_header=routing_header,
            override_cidrs=tuple(override_cidr),
            forwarded_allow_ips=forwarded_allow_ips,
            predict_threads=predict_threads,
            batch_size=batch_size,
            http_parser=http_parser,
            mirror_queue=mirror_queue,
            log_max_bytes=log_max_bytes,
            log_backups=log_backups,
            feedback_window=feedback_window,
        )
        settings.check()
        from gray.controller.extras import require_extra

        require_extra("gateway", "gray gateway serve")
        from gray.gateway.server import serve as run_server

        run_server(settings, log_level=log_level, access_log=access_log)
    except GrayError as error:
        raise _fail(error) from None


@gateway_app.command("samples")
def samples(
    state_dir: Path = typer.Option(Path(".gray/gateway"), "--state-dir"),
    kind: str | None = typer.Option(None, "--kind", help="prediction or shadow"),
    version: str | None = typer.Option(None, "--version"),
    disagreements: bool = typer.Option(
        False, "--disagreements", help="Only mirrored pairs whose outputs differed."
    ),
    count: int = typer.Option(20, "-n", "--count"),
) -> None:
    """Print the newest lines of the prediction log, as JSON lines.

    Examples:

    \b
      gray gateway samples --state-dir .gray/gateway -n 20
      gray gateway samples --state-dir .gray/gateway --disagreements
    """
    from gray.gateway.samples import read_samples

    try:
        records = read_samples(
            state_dir,
            count=count,
            kind="shadow" if disagreements else kind,
            version=version,
            only_disagreements=disagreements,
        )
    except GrayError as error:
        raise _fail(error) from None
    for record in records:
        typer.echo(json.dumps(record, sort_keys=True))
