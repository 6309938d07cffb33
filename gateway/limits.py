"""Limits that keep one client from starving the others: body size, slow headers, connections.

- `BodyLimit` (ASGI middleware): a body whose Content-Length exceeds the limit is refused
  with 413 before a byte of it is read; a chunked body is counted as it arrives and
  refused with 413 as soon as it passes the limit. A body whose sender pauses longer
  than the header timeout is given up with 408.
- `guarded_protocol(...)`: uvicorn's HTTP/1.1 protocol (httptools' C parser when it is
  installed, else the pure-Python h11) with a connection cap (a connection
  over the cap is answered 503 `too_many_connections` and closed at once) and a
  header-read timeout (a connection that has not sent a request's headers within it is
  closed), so half-open sockets cannot hold file descriptors for ever. Idle kept-alive
  connections are closed by uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from gray.gateway.settings import HTTP_PARSERS

log = logging.getLogger("gray.gateway")


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyTooSlow(Exception):
    def __init__(self, pause: float) -> None:
        super().__init__(f"the request body stalled for {pause:g}s")
        self.pause = pause


def too_slow_payload(pause: float) -> dict[str, Any]:
    return {
        "error": "body_timeout",
        "message": f"the request body stopped arriving for {pause:g}s (--header-timeout); "
        "send it without pauses",
    }


def too_large_payload(limit: int) -> dict[str, Any]:
    return {
        "error": "body_too_large",
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": f"the request body is larger than the gateway's limit of {limit} bytes "
        "(--max-body); send fewer rows per request",
    }


class BodyLimit:
    """Refuse request bodies above `limit` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int, pause: float) -> None:
        self.app = app
        self.limit = limit
        self.pause = pause

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        received = 0
        complete = False

        async def counted() -> Message:
            nonlocal received, complete
            if complete:
                # After the body, receive() waits for a disconnect, as long as it takes.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.pause)
            except TimeoutError:
                raise BodyTooSlow(self.pause) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send) -> None:
        # The unread body would otherwise be parsed as the next request.
        await send_json(send, 413, too_large_payload(self.limit), (b"connection", b"close"))


async def send_json(
    send: Send, status: int, payload: dict[str, Any], *headers: tuple[bytes, bytes]
) -> None:
    """Answer from ASGI middleware, before the app runs: `payload` as JSON with `headers`."""
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"retry-after: 1\r\n"
)


def refusal_bytes(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": "too_many_connections",
            "message": f"the gateway holds its limit of {limit} open connections "
            "(--max-connections); retry shortly",
        }
    ).encode()
    return REFUSAL + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


class ConnectionCounters:
    """Connections refused over the cap and closed for slow headers, for /metrics."""

    def __init__(self) -> None:
        self.refused = 0
        self.header_timeouts = 0

    def count_refusal(self) -> None:
        self.refused += 1
        if self.refused in (1, 10, 100, 1000) or self.refused % 10000 == 0:
            log.warning("refused %d connection(s) over --max-connections so far", self.refused)

    def count_header_timeout(self) -> None:
        self.header_timeouts += 1


def http_protocol_base(parser: str = "auto") -> type[Any]:
    """uvicorn's protocol class for `parser`; "auto" is httptools when it is installed.

    Both parse HTTP/1.1 the same way for the gateway; httptools does it in C, which
    matters when the model itself takes well under a millisecond per request.
    """
    if parser not in HTTP_PARSERS:
        raise ValueError(f"unknown HTTP parser {parser!r} (known: {', '.join(HTTP_PARSERS)})")
    if parser in ("auto", "httptools"):
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        except ImportError:
            if parser == "httptools":
                raise
        else:
            return HttpToolsProtocol
    return H11Protocol


def guarded_protocol(
    max_connections: int,
    header_timeout: float,
    counters: ConnectionCounters,
    base: type[Any] | None = None,
) -> type[Any]:
    """uvicorn's HTTP protocol (`base`, default `http_protocol_base()`) with a connection
    cap and a header-read timeout. Both uvicorn protocols keep the attributes used here
    (`server_state`, `cycle`, `loop`, `transport`) and call `on_response_complete`."""
    # Long because the protocol class is built here, to close over the limits and the
    # counters uvicorn gives it no other way to reach; each of its methods is short.
    refusal = refusal_bytes(max_connections)
    base = base or http_protocol_base()

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.server_state.connections) >= max_connections:
                # Refuse before uvicorn counts it, so the cap bounds what is held open.
                self._refused = True
                self.transport = transport
                transport.write(refusal)
                transport.close()
                counters.count_refusal()
                return
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm_header_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            between_requests = self.cycle is None or self.cycle.response_complete
            if between_requests and self._header_timer is None:
                # The first bytes of a new request: its headers must be complete in time.
                self._arm_header_timer()
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Until the next request's first byte, the keep-alive timeout governs.
            self._disarm_header_timer()

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is not None and not self.cycle.response_complete:
                return
            if not self.transport.is_closing():
                counters.count_header_timeout()
                self.transport.close()

    return GuardedProtocol
