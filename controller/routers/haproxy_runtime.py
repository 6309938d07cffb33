"""A client for HAProxy's runtime API (the `stats socket ... level admin` of its config).

One command per connection, as HAProxy's non-interactive mode expects: send the line,
read until HAProxy closes. HAProxy answers errors as text (exit status does not
exist on a socket), so every command whose success is an empty answer is checked
for that, and any other text is raised with HAProxy's own words.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gray.controller.errors import ConfigError, RouterError

DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 0.2
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # `show stat` of a large config stays far below this

# `show servers state` columns gray reads (the header line names them; HAProxy 1.6+).
OP_STATE_RUNNING = 2  # srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping
ADMIN_STATE_READY = 0  # srv_admin_state: a bit field; 0 means no maintenance or drain


@dataclass(frozen=True)
class RuntimeAddress:
    """Where the runtime API listens: a unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> RuntimeAddress:
        """`unix:///run/haproxy/admin.sock` or `tcp://127.0.0.1:9999`."""
        parts = urlsplit(text)
        if parts.scheme == "unix" and parts.path and not parts.netloc:
            return cls(path=parts.path)
        if parts.scheme == "tcp" and parts.hostname and parts.port and parts.path in ("", "/"):
            return cls(host=parts.hostname, port=parts.port)
        raise ConfigError(
            f"HAProxy runtime_api {text!r} is not unix:///path/to/socket or tcp://host:port"
        )

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path else f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerState:
    """One server of a backend as `show servers state` reports it."""

    name: str
    op_state: int
    admin_state: int
    user_weight: int

    @property
    def ready(self) -> bool:
        return self.op_state == OP_STATE_RUNNING and self.admin_state == ADMIN_STATE_READY


class RuntimeApi:
    """Commands to one HAProxy process; transport failures are retried, answers are not."""

    def __init__(
        self,
        address: RuntimeAddress,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        *,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.address = address
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep

    def command(self, line: str) -> str:
        """HAProxy's answer to one command line, with surrounding blank lines removed."""
        _refuse_smuggling(line)
        return self._line(line)

    def _line(self, line: str) -> str:
        """Send one line (checked by the caller), retried on transport failures."""
        delay = RETRY_BACKOFF_SECONDS
        failure = ""
        for attempt in range(self._retries + 1):
            try:
                return self._send(line).strip("\n")
            except OSError as error:
                failure = f"{type(error).__name__}: {error}"
            if attempt < self._retries:
                self._sleep(delay)
                delay *= 2
        raise RouterError(
            f"HAProxy's runtime API at {self.address} did not answer {line.split(' ')[0]!r} "
            f"after {self._retries + 1} attempts: {failure}"
        )

    def expect_empty(self, line: str) -> None:
        """Run a command whose success is an empty answer; any text is HAProxy's refusal."""
        answer = self.command(line)
        if answer.strip():
            raise RouterError(f"HAProxy at {self.address} refused {line!r}: {answer.strip()}")

    # --- servers -------------------------------------------------------------------------

    def servers_state(self, backend: str) -> dict[str, ServerState]:
        """Every server of `backend` by name (RouterError when HAProxy has no such backend)."""
        answer = self.command(f"show servers state {backend}")
        lines = [line for line in answer.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# ")), None)
        if header is None:
            raise RouterError(
                f"HAProxy at {self.address} has no backend {backend!r}: {answer.strip()}"
            )
        columns = header[2:].split()
        states: dict[str, ServerState] = {}
        for line in lines[lines.index(header) + 1 :]:
            row = dict(zip(columns, line.split(), strict=False))
            try:
                state = ServerState(
                    name=row["srv_name"],
                    op_state=int(row["srv_op_state"]),
                    admin_state=int(row["srv_admin_state"]),
                    user_weight=int(row["srv_uweight"]),
                )
            except (KeyError, ValueError) as error:
                raise RouterError(
                    f"HAProxy at {self.address} answered an unreadable server state {line!r}: "
                    f"{error!r}"
                ) from None
            states[state.name] = state
        return states

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.expect_empty(f"set server {backend}/{server} weight {weight}")

    def set_weights(self, backend: str, weights: Sequence[tuple[str, int]]) -> None:
        """Several servers' weights in one command line, in the given order: HAProxy runs
        the `;`-separated commands of a line it received whole, so a connection lost on
        the way changes all of them or none, never one server's alone."""
        commands = [f"set server {backend}/{server} weight {weight}" for server, weight in weights]
        for command in commands:
            _refuse_smuggling(command)
        line = "; ".join(commands)
        answer = self._line(line).strip("\n")
        if answer.strip():
            raise RouterError(f"HAProxy at {self.address} refused {line!r}: {answer.strip()}")

    # --- maps ----------------------------------------------------------------------------

    def map_get(self, map_name: str, key: str) -> str | None:
        """The value of `key` in the map (None: no such key). The map must be loaded by the
        config (a `map(...)` converter that names its file)."""
        entries = self.map_entries(map_name)
        return entries.get(key)

    def map_entries(self, map_name: str) -> dict[str, str]:
        """Every key and value of a loaded map (the first entry wins for a repeated key)."""
        answer = self.command(f"show map {map_name}")
        entries: dict[str, str] = {}
        for line in answer.splitlines():
            fields = line.split(" ", 2)
            if len(fields) != 3 or not fields[0].startswith("0x"):
                raise RouterError(
                    f"HAProxy at {self.address} cannot show map {map_name!r}: {answer.strip()} "
                    "(the config must load it: see the snippet `gray haproxy snippet` prints)"
                )
            entries.setdefault(fields[1], fields[2])
        return entries

    def map_put(self, map_name: str, key: str, value: str) -> None:
        """Set `key` to `value`, adding it when absent."""
        if self.map_get(map_name, key) is None:
            self.expect_empty(f"add map {map_name} {key} {value}")
        else:
            self.expect_empty(f"set map {map_name} {key} {value}")

    # --- statistics ----------------------------------------------------------------------

    def stat_rows(self) -> list[dict[str, str]]:
        """`show stat` as one dict per proxy or server line (columns by their CSV names)."""
        answer = self.command("show stat")
        if not answer.startswith("# "):
            raise RouterError(f"HAProxy at {self.address} answered unreadable stats: {answer!r}")
        return list(csv.DictReader(io.StringIO(answer[2:])))

    def process_started(self) -> tuple[str, str]:
        """Which HAProxy process answers: (pid, start time), to notice restarts and reloads."""
        info: dict[str, str] = {}
        for line in self.command("show info").splitlines():
            name, _, value = line.partition(":")
            info[name.strip()] = value.strip()
        return info.get("Pid", ""), info.get("Start_time_sec", "")

    # --- plumbing ------------------------------------------------------------------------

    def _send(self, line: str) -> str:
        if self.address.path is not None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = self.address.path
        else:
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (self.address.host, self.address.port)
        with connection:
            connection.settimeout(self._timeout)
            connection.connect(target)  # type: ignore[arg-type]
            connection.sendall(line.encode() + b"\n")
            chunks: list[bytes] = []
            size = 0
            while chunk := connection.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise OSError(f"answer over {MAX_ANSWER_BYTES} bytes")
        return b"".join(chunks).decode(errors="replace")


def _refuse_smuggling(line: str) -> None:
    """A newline or `;` in a name would smuggle a second command into the line."""
    if "\n" in line or ";" in line:
        raise RouterError(f"refusing to send a command with a newline or ';': {line!r}")
