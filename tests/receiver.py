"""A tiny real HTTP server that receives gray's webhooks, for hook and notify tests.

Each POST is kept (path, headers, JSON body). The answers for a path are set per
test: statuses in turn, a body and a delay (to make a hook time out).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    delay: float = 0.0


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    replies: dict[str, list[Reply]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def reply(self, path: str, *statuses: int, body: str = "ok", delay: float = 0.0) -> None:
        """Answer `path` with these statuses in turn; the last one repeats."""
        self.replies[path] = [Reply(status, body, delay) for status in statuses]

    def next_reply(self, path: str) -> Reply:
        queue = self.replies.get(path)
        if not queue:
            return Reply()
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.path == path]


def start_receiver() -> Receiver:
    receiver = Receiver(server=None)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            receiver.received.append(Received(self.path, dict(self.headers.items()), body))
            reply = receiver.next_reply(self.path)
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.body.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the caller gave up (a timed-out hook)
                pass

        def log_message(self, *args: object) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server.daemon_threads = True
    # A short poll: stopping the receiver at the end of a test waits for one.
    threading.Thread(target=receiver.server.serve_forever, args=(0.05,), daemon=True).start()
    return receiver


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    running = start_receiver()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
