"""A TCP proxy on loopback in front of a real peer, which breaks the path on demand.

Router contract tests put it between a router and its endpoint (a gateway's HTTP port,
HAProxy's runtime API) so that "the endpoint is unreachable" and "a write fails
midway" happen on the wire, to the real peer, rather than in a mock:

    with FaultProxy(("127.0.0.1", gateway.port)) as proxy:
        router = GatewayRouter(proxy.url, token)
        with proxy.refusing():            # every new connection reset at once
            ...
        with proxy.losing_answers():      # requests reach the peer, answers never return
            ...
        with proxy.cut_after(3):          # three more connections pass, then resets
            ...

Connections already open when a mode starts keep the mode they started under; HTTP
clients that keep connections alive should be given a fresh client per test.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum

BUFFER_BYTES = 65536


class Mode(Enum):
    FORWARD = "forward"
    REFUSE = "refuse"  # accept, then reset without reading
    LOSE_ANSWERS = "lose_answers"  # the request reaches the peer; the client is reset


class FaultProxy:
    """Forwards every connection to `target` until told to break."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._mode = Mode.FORWARD
        self._passes_left: int | None = None  # with cut_after: connections still forwarded
        self._closed = False
        threading.Thread(target=self._accept_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """The peer unreachable: every new connection is reset before a byte is read."""
        with self._in_mode(Mode.REFUSE, None):
            yield

    @contextmanager
    def losing_answers(self) -> Iterator[None]:
        """Requests reach the peer and are carried out; their answers are lost (the client's
        connection is reset once the peer answers), as when a link drops mid-call."""
        with self._in_mode(Mode.LOSE_ANSWERS, None):
            yield

    @contextmanager
    def cut_after(self, connections: int) -> Iterator[None]:
        """`connections` more connections are forwarded whole; every later one is reset."""
        with self._in_mode(Mode.REFUSE, connections):
            yield

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _in_mode(self, mode: Mode, passes: int | None) -> Iterator[None]:
        with self._lock:
            self._mode, self._passes_left = mode, passes
        try:
            yield
        finally:
            with self._lock:
                self._mode, self._passes_left = Mode.FORWARD, None

    def _mode_for_next(self) -> Mode:
        with self._lock:
            if self._passes_left is not None and self._passes_left > 0:
                self._passes_left -= 1
                return Mode.FORWARD
            return self._mode

    def _accept_forever(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self._mode_for_next()
            if mode is Mode.REFUSE:
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client, mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: Mode) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=30)
        except OSError:
            _reset(client)
            return
        for side in (client, upstream):  # relay each chunk at once: no Nagle wait per hop
            side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        if mode is Mode.LOSE_ANSWERS:
            with suppress(OSError):
                upstream.recv(BUFFER_BYTES)  # the peer has acted and answers: drop it
            _reset(client)
            upstream.close()
            return
        _pump(upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until either side closes, then close both."""
    try:
        while chunk := source.recv(BUFFER_BYTES):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for side in (source, sink):
            with suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)


def _reset(connection: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a peer that is gone does. The shutdown
    first wakes a thread still reading the socket, which would otherwise keep it open."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        connection.close()
