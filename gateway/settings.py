"""The gateway's settings, checked once before anything starts."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from gray.controller.errors import ConfigError
from gray.controller.units import parse_duration

TOKEN_ENV = "GRAY_GATEWAY_TOKEN"


@dataclass(frozen=True)
class GatewaySettings:
    """Everything `gray gateway serve` can be told. Durations in seconds."""

    model_name: str
    state_dir: Path
    registry_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    insecure_no_auth: bool = False
    baseline: str = "@champion"
    slo_edges: tuple[float, ...] = ()
    routing_header: str = "X-User-Id"
    override_cidrs: tuple[str, ...] = ()
    forwarded_allow_ips: str = "127.0.0.1"
    predict_threads: int = 1
    mirror_queue: int = 256
    log_max_bytes: int = 50 * 1024 * 1024
    log_backups: int = 5
    feedback_window: int = 50_000
    warmup_rounds: int = 3

    def check(self) -> None:
        """Refuse settings that would make an unsafe or broken gateway."""
        if not self.model_name:
            raise ConfigError("--model is required")
        if self.token is not None and not self.token.strip():
            raise ConfigError(f"{TOKEN_ENV} is set but empty")
        if self.token is None and not self.insecure_no_auth:
            raise ConfigError(
                f"no admin token: set {TOKEN_ENV}, or bind to loopback and pass --insecure-no-auth"
            )
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"--insecure-no-auth is only allowed on a loopback address, not {self.host!r}; "
                f"set {TOKEN_ENV} to serve on other addresses"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
        for cidr in self.override_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"--override-cidr {cidr!r} is not a network") from None
        for name, value in (
            ("--predict-threads", self.predict_threads),
            ("--mirror-queue", self.mirror_queue),
            ("--log-backups", self.log_backups),
            ("--feedback-window", self.feedback_window),
            ("--warmup-rounds", self.warmup_rounds),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.log_max_bytes < 4096:
            raise ConfigError("--log-max-bytes must be at least 4096")

    @property
    def auth_required(self) -> bool:
        return self.token is not None

    @property
    def route_file(self) -> Path:
        return self.state_dir / "route.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "predictions"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_slo_edges(text: str | None) -> tuple[float, ...]:
    """`"100ms,250ms,1s"` to sorted unique seconds."""
    if not text:
        return ()
    edges: set[float] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            edges.add(parse_duration(part))
        except ValueError as error:
            raise ConfigError(f"--slo-edges: {error}") from None
    return tuple(sorted(edges))


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    return (environ if environ is not None else os.environ).get(TOKEN_ENV)
