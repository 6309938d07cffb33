"""Run the gateway under uvicorn (one process: routes, counters and models live in memory)."""

from __future__ import annotations

import fcntl
import logging
import resource
import socket
from pathlib import Path
from typing import IO

from gray.controller.errors import GatewayError
from gray.gateway.models import VersionLoader
from gray.gateway.settings import GatewaySettings

log = logging.getLogger("gray.gateway")

# File descriptors the process needs besides client connections: models, logs, registry.
RESERVED_FILES = 128


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn so a busy port is a clear GatewayError, not an exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and
    # without it small responses wait ~40 ms for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise GatewayError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the state directory: two gateways must not share a route file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "gateway.lock", "w")  # noqa: SIM115 - held while serving
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise GatewayError(
            f"another gateway is using the state directory {state_dir}; give each gateway "
            "its own --state-dir"
        ) from None
    return handle


def serve(
    settings: GatewaySettings,
    *,
    loader: VersionLoader | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM. Raises GrayError for anything wrong before listening."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from gray.controller.redact import install_log_redaction
    from gray.gateway.app import create_app
    from gray.gateway.limits import ConnectionCounters, guarded_protocol, http_protocol_base

    settings.check()
    install_log_redaction()  # a registry URL's credentials never reach the gateway's log
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    max_connections = fit_connection_cap(settings.max_connections)
    lock = lock_state_dir(settings.state_dir)
    try:
        sock = bind(settings.host, settings.port)
    except GatewayError:
        lock.close()
        raise
    try:
        counters = ConnectionCounters()
        protocol = http_protocol_base(settings.http_parser)
        app = create_app(settings, loader, counters)
        config = uvicorn.Config(
            app,
            http=guarded_protocol(max_connections, settings.header_timeout, counters, protocol),
            log_level=log_level,
            access_log=access_log,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=settings.idle_timeout,  # type: ignore[arg-type]  # a float works
        )
        parser = "h11" if protocol is H11Protocol else "httptools"
        _log_start(settings, int(sock.getsockname()[1]), max_connections, parser)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        lock.close()


def _log_start(settings: GatewaySettings, port: int, max_connections: int, parser: str) -> None:
    log.info(
        "gray gateway for model %s listening on %s (%s; state in %s; at most %d "
        "connections, bodies up to %d bytes; HTTP parser %s)",
        settings.model_name,
        listen_url(settings.host, port),
        "admin token required" if settings.auth_required else "NO authentication",
        settings.state_dir,
        max_connections,
        settings.max_body_bytes,
        parser,
    )


def listen_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def fit_connection_cap(wanted: int) -> int:
    """Raise the open-file limit to fit `wanted` connections, or lower the cap to fit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(soft - RESERVED_FILES, 8)
        log.warning(
            "the open-file limit (%d) leaves room for %d connections, not --max-connections "
            "%d; serving at most %d (raise `ulimit -n` for more)",
            soft,
            fitted,
            wanted,
            fitted,
        )
        return fitted
    return wanted
