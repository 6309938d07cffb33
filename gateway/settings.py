"""The gateway's settings, checked once before anything starts."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gray.controller.errors import ConfigError
from gray.controller.plan.units import parse_duration

HTTP_PARSERS = ("auto", "httptools", "h11")  # uvicorn's HTTP/1.1 protocols

TOKEN_ENV = "GRAY_GATEWAY_TOKEN"
FEEDBACK_TOKEN_ENV = "GRAY_GATEWAY_FEEDBACK_TOKEN"
STATS_TOKEN_ENV = "GRAY_GATEWAY_STATS_TOKEN"
# Each token may come from a file instead (`<VARIABLE>_FILE=/run/secrets/...`).
FILE_SUFFIX = "_FILE"

MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    """Everything `gray gateway serve` can be told. Durations in seconds."""

    model_name: str
    state_dir: Path
    registry_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # admin: everything
    feedback_token: str | None = None  # POST /feedback only
    stats_token: str | None = None  # read-only: route, versions, stats, metrics, health
    insecure_no_auth: bool = False
    baseline: str = "@champion"
    slo_edges: tuple[float, ...] = ()
    routing_header: str = "X-User-Id"
    override_cidrs: tuple[str, ...] = ()
    forwarded_allow_ips: str = "127.0.0.1"
    predict_threads: int = 1
    batch_size: int = 1  # above 1: up to this many queued requests predicted in one call
    http_parser: str = "auto"  # uvicorn's HTTP/1.1 parser: httptools when installed, else h11
    mirror_queue: int = 256
    log_max_bytes: int = 50 * 1024 * 1024
    log_backups: int = 5
    feedback_window: int = 50_000
    warmup_rounds: int = 3
    max_body_bytes: int = 16 * MIB
    max_connections: int = 1000
    header_timeout: float = 10.0  # from a connection's first byte (or its opening) to the headers
    idle_timeout: float = 5.0  # a kept-alive connection with no request is closed after this
    verify_interval: float = 30.0  # how often loaded versions' preprocessor tags are re-read

    def check(self) -> None:
        """Refuse settings that would make an unsafe or broken gateway."""
        if not self.model_name:
            raise ConfigError("--model is required")
        self._check_tokens()
        self._check_limits()

    def _check_tokens(self) -> None:
        """Tokens set but empty, scoped tokens equal to another, or no token off loopback."""
        for variable, value in (
            (TOKEN_ENV, self.token),
            (FEEDBACK_TOKEN_ENV, self.feedback_token),
            (STATS_TOKEN_ENV, self.stats_token),
        ):
            if value is not None and not value.strip():
                raise ConfigError(f"{variable} is set but empty")
        scoped = [t for t in (self.feedback_token, self.stats_token) if t is not None]
        if (self.token is not None and self.token in scoped) or len(set(scoped)) < len(scoped):
            raise ConfigError(
                f"{TOKEN_ENV}, {FEEDBACK_TOKEN_ENV} and {STATS_TOKEN_ENV} must differ: a scoped "
                "token equal to another would carry that token's rights"
            )
        if self.token is None and scoped:
            raise ConfigError(
                f"{FEEDBACK_TOKEN_ENV} or {STATS_TOKEN_ENV} is set without {TOKEN_ENV}: set the "
                "admin token too"
            )
        if self.token is None and not self.insecure_no_auth:
            raise ConfigError(
                f"no admin token: set {TOKEN_ENV}, or bind to loopback and pass --insecure-no-auth"
            )
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"--insecure-no-auth is only allowed on a loopback address, not {self.host!r}; "
                f"set {TOKEN_ENV} to serve on other addresses"
            )

    def _check_limits(self) -> None:
        """Numbers out of range, networks that do not parse, an unknown HTTP parser."""
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
        for cidr in self.override_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"--override-cidr {cidr!r} is not a network") from None
        for name, value in (
            ("--predict-threads", self.predict_threads),
            ("--batch-size", self.batch_size),
            ("--mirror-queue", self.mirror_queue),
            ("--log-backups", self.log_backups),
            ("--feedback-window", self.feedback_window),
            ("--warmup-rounds", self.warmup_rounds),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.http_parser not in HTTP_PARSERS:
            raise ConfigError(
                f"--http must be one of {', '.join(HTTP_PARSERS)}, got {self.http_parser!r}"
            )
        if self.log_max_bytes < 4096:
            raise ConfigError("--log-max-bytes must be at least 4096")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"--max-body must be at least 1KB, got {self.max_body_bytes} bytes")
        if self.max_connections < 8:
            raise ConfigError(f"--max-connections must be at least 8, got {self.max_connections}")
        for name, seconds in (
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--verify-interval", self.verify_interval),
        ):
            if not 0 < seconds <= 3600:
                raise ConfigError(f"{name} must be between 1ms and 1h, got {seconds:g}s")

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


def token_from_env(
    environ: Mapping[str, str] | None = None, variable: str = TOKEN_ENV
) -> str | None:
    """The token in `variable`, or in the file named by `variable`_FILE (one of them, not both).

    A file's trailing newline is not part of the token.
    """
    env = environ if environ is not None else os.environ
    direct = env.get(variable)
    file_variable = variable + FILE_SUFFIX
    path = env.get(file_variable)
    if path is None:
        return direct
    if direct is not None:
        raise ConfigError(f"set {variable} or {file_variable}, not both")
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(f"{file_variable}: cannot read {path}: {reason}") from None


def parse_size(text: str) -> int:
    """`"16MB"`, `"512KB"`, `"1048576"` to bytes (KB and MB are binary: 1024-based)."""
    cleaned = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiple in (("K", 1024), ("M", MIB), ("G", 1024 * MIB)):
        if cleaned.endswith(suffix):
            cleaned, factor = cleaned[: -len(suffix)], multiple
            break
    try:
        value = float(cleaned)
    except ValueError:
        raise ConfigError(f"expected a size such as 16MB or 512KB, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"expected a positive size such as 16MB, got {text!r}")
    return int(value * factor)
