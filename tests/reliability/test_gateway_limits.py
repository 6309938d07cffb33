"""The gateway keeps serving while clients misbehave: huge bodies, half-open and slow sockets.

A real gateway (subprocess, real registry) with small limits so each case runs in about a
second: the same code paths that refuse a 100 MB body or thousands of half-open sockets
at the default limits (16 MB, 1000 connections, 10 s to send headers).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from gray.gateway.testing import RunningGateway
from tests.metrics_text import sample

from .conftest import LIMITS, start_limited_gateway

pytestmark = pytest.mark.slow

MAX_BODY = int(LIMITS["max_body"])
MAX_CONNECTIONS = int(LIMITS["max_connections"])
HEADER_TIMEOUT = LIMITS["header_timeout"]
IDLE_TIMEOUT = LIMITS["idle_timeout"]


@pytest.fixture(scope="module")
def gateway(limited_gateway: RunningGateway) -> RunningGateway:
    return limited_gateway


@pytest.fixture(scope="module", params=["httptools", "h11"])
def guarded_gateway(
    request: pytest.FixtureRequest,
    limited_gateway: RunningGateway,
    demo_registry: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    """The connection guards under both of uvicorn's HTTP parsers: the guard wraps either.
    (The body limits are ASGI middleware, the same whatever parses the request.)"""
    if request.param == "httptools":
        yield limited_gateway  # the suite's shared gateway runs the default parser
        return
    running = start_limited_gateway(demo_registry, tmp_path_factory, "--http", "h11")
    yield running
    running.stop()


def raw(gateway: RunningGateway, payload: bytes = b"", timeout: float = 5.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout)
    if payload:
        connection.sendall(payload)
    return connection


def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = connection.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def ping_seconds(gateway: RunningGateway) -> float:
    started = time.perf_counter()
    assert httpx.get(f"{gateway.url}/ping", timeout=5).status_code == 200
    return time.perf_counter() - started


def metric(gateway: RunningGateway, name: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics", headers=gateway.headers, timeout=5).text
    value = sample(text, name)
    assert value is not None, f"{name} is not on the page"
    return value


def test_a_huge_declared_body_is_refused_before_it_is_read(gateway: RunningGateway) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 104857600\r\n\r\n"  # 100 MB announced, none of it sent
    )
    started = time.perf_counter()
    with raw(gateway, head) as connection:
        answer = read_all(connection)
    assert time.perf_counter() - started < 2.0
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"body_too_large" in answer and b"--max-body" in answer
    assert ping_seconds(gateway) < 1.0


def test_a_chunked_body_over_the_limit_is_cut_off_at_the_limit(gateway: RunningGateway) -> None:
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with raw(gateway, head) as connection:
        answer = b""
        try:
            for _ in range(4 * MAX_BODY // len(chunk)):  # 4 MB offered, 1 MB allowed
                connection.sendall(framed)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and stopped reading
        answer = read_all(connection)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Bodies under the limit are read as before.
    small = httpx.post(f"{gateway.url}/invocations", content=b"{}", timeout=5)
    assert small.status_code == 400


def test_a_body_that_stops_arriving_is_given_up(gateway: RunningGateway) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"inputs": ['  # then nothing more
    )
    started = time.monotonic()
    with raw(gateway, head, timeout=HEADER_TIMEOUT + 3) as connection:
        answer = read_all(connection)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer
    assert time.monotonic() - started < HEADER_TIMEOUT + 1.5


def test_half_open_sockets_are_capped_refused_clearly_and_dropped(
    guarded_gateway: RunningGateway,
) -> None:
    refused_before = metric(guarded_gateway, "gray_connections_refused_total")
    timeouts_before = metric(guarded_gateway, "gray_header_timeouts_total")
    with ExitStack() as stack:
        # Connections that never send a byte: the attack that exhausted file descriptors.
        silent = [stack.enter_context(raw(guarded_gateway)) for _ in range(MAX_CONNECTIONS + 20)]
        time.sleep(0.3)
        extra = raw(guarded_gateway, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        refusal = read_all(extra)
        extra.close()
        assert refusal.startswith(b"HTTP/1.1 503"), refusal[:200]
        assert b"too_many_connections" in refusal and b"--max-connections" in refusal
        # Within the header timeout the guarded_gateway drops them and answers again.
        started = time.monotonic()
        while True:
            try:
                if httpx.get(f"{guarded_gateway.url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() - started < HEADER_TIMEOUT + 3
            time.sleep(0.05)
        closed = 0
        for connection in silent:
            connection.settimeout(HEADER_TIMEOUT + 2)
            try:
                closed += connection.recv(1024)[:12] in (b"", b"HTTP/1.1 503")
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == len(silent)
    assert metric(guarded_gateway, "gray_connections_refused_total") >= refused_before + 20
    assert (
        metric(guarded_gateway, "gray_header_timeouts_total")
        >= timeouts_before + MAX_CONNECTIONS - 1
    )


def test_headers_sent_slowly_are_cut_off_and_idle_connections_closed(
    guarded_gateway: RunningGateway,
) -> None:
    slow = raw(guarded_gateway, b"GET /ping HTTP/1.1\r\n", timeout=HEADER_TIMEOUT + 3)
    closed = threading.Event()

    def trickle() -> None:
        try:
            while not closed.is_set():
                slow.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.2)
        except OSError:
            closed.set()

    started = time.monotonic()
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    assert read_all(slow) == b""  # closed without an answer
    closed.set()
    assert time.monotonic() - started < HEADER_TIMEOUT + 1.5
    slow.close()

    with raw(guarded_gateway, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n") as idle:
        idle.settimeout(IDLE_TIMEOUT + 3)
        started = time.monotonic()
        answer = read_all(idle)  # the answer, then the close once the idle timeout passes
        assert answer.startswith(b"HTTP/1.1 200")
        assert IDLE_TIMEOUT - 0.2 < time.monotonic() - started < IDLE_TIMEOUT + 1.5


def test_the_limits_are_logged_with_the_address(guarded_gateway: RunningGateway) -> None:
    log = guarded_gateway.log_path.read_text(errors="replace")
    assert f"listening on {guarded_gateway.url}" in log
    assert f"at most {MAX_CONNECTIONS} connections, bodies up to {MAX_BODY} bytes" in log
    parser = "h11" if "h11" in guarded_gateway.args else "httptools"
    assert f"HTTP parser {parser})" in log
