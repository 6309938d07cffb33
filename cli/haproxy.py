"""`gray haproxy`: the HAProxy configuration a `router: {type: haproxy}` plan needs."""

from __future__ import annotations

import typer

from gray.cli.output import reported_errors
from gray.controller.errors import ConfigError

haproxy_app = typer.Typer(
    help="Help set up HAProxy as gray's router (weights and leases through its runtime API).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@haproxy_app.command("snippet")
def snippet(
    backend: str = typer.Option(..., "--backend", help="The backend's name (the plan's backend)."),
    servers: list[str] = typer.Option(
        ...,
        "--server",
        help="NAME=HOST:PORT, once for the baseline's server and once for the candidate's.",
    ),
    candidate: str = typer.Option(
        ..., "--candidate", help="The server that starts with weight 0 (no traffic)."
    ),
    routing_header: str = typer.Option(
        "X-Routing-Key", "--routing-header", help="The header that keeps a user on one server."
    ),
    lease_map: str = typer.Option(
        "/etc/haproxy/gray-leases.map", "--lease-map", help="Where gray keeps its lease."
    ),
    runtime_socket: str = typer.Option(
        "/run/haproxy/admin.sock", "--socket", help="The runtime API socket gray talks to."
    ),
) -> None:
    """Print the haproxy.cfg lines gray needs: an admin runtime API socket, the lease map,
    and consistent hashing on the routing header so users stay on one server.

    \b
    Example:
      gray haproxy snippet --backend fraud --server v1=10.0.0.1:8080 \\
          --server v2=10.0.0.2:8080 --candidate v2 >> /etc/haproxy/haproxy.cfg
      touch /etc/haproxy/gray-leases.map
    """
    from gray.controller.routers.haproxy_config import config_snippet

    with reported_errors():
        addresses = dict(_server(text) for text in servers)
        if len(addresses) != 2 or candidate not in addresses:
            raise ConfigError(
                "--server: give two servers, NAME=HOST:PORT each, one of them the --candidate "
                f"({candidate!r}); got {', '.join(servers)}"
            )
        typer.echo(
            config_snippet(
                backend,
                addresses,
                routing_header=routing_header,
                lease_map=lease_map,
                runtime_socket=runtime_socket,
                candidate=candidate,
            ),
            nl=False,
        )


def _server(text: str) -> tuple[str, str]:
    name, _, address = text.partition("=")
    if not name or ":" not in address:
        raise ConfigError(f"--server {text!r}: expected NAME=HOST:PORT")
    return name, address
