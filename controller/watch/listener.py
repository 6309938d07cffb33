"""The local HTTP endpoint for MLflow's registry webhooks.

`POST /webhook` takes a delivery, verifies it (`signature.verify`: signed with the
watcher's secret, fresh, never seen), and nudges the watcher when it says the plan's
candidate alias was set (`model_version_alias.created` for the plan's model and alias).
The payload is only a nudge: the watcher reads the registry itself, so a delivery can
make it look sooner, never make it start something the registry does not say.
`GET /health` answers what the watcher last saw. Every refusal is a 4xx with a JSON
`reason`. The standard library's threaded server keeps the watcher free of the gateway's
web stack.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gray.controller.errors import WebhookRefusedError
from gray.controller.watch.signature import ReplayGuard, verify

WEBHOOK_PATH = "/webhook"
HEALTH_PATH = "/health"
MAX_BODY_BYTES = 1024 * 1024  # MLflow's registry payloads are a few hundred bytes
READ_TIMEOUT_SECONDS = 10.0
SHUTDOWN_POLL_SECONDS = 0.05  # how soon `stop` is heard
ALIAS_CREATED = ("model_version_alias", "created")


@dataclass(frozen=True)
class ListenerSettings:
    secret: str
    model: str
    alias: str  # without its "@"


def relevance(payload: object, model: str, alias: str) -> str | None:
    """Why a verified delivery does not concern the watcher, or None when it does."""
    if not isinstance(payload, dict):
        return "the payload is not a JSON object"
    event = (payload.get("entity"), payload.get("action"))
    if event != ALIAS_CREATED:
        return f"event {event[0]}.{event[1]} is not model_version_alias.created"
    data = payload.get("data")
    if not isinstance(data, dict):
        return "the payload has no data object"
    if data.get("name") != model or data.get("alias") != alias:
        return (
            f"alias @{data.get('alias')} of {data.get('name')!r} is not the watched @{alias} "
            f"of {model!r}"
        )
    return None


class _Server(ThreadingHTTPServer):
    """The HTTP server, holding what its handlers answer with."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        settings: ListenerSettings,
        nudge: Callable[[str], None],
        status: Callable[[], dict[str, Any]],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        super().__init__(address, _Handler)
        self.settings = settings
        self.nudge = nudge
        self.status = status
        self.emit = emit
        self.guard = ReplayGuard()


class WebhookListener:
    """A threaded HTTP server on `host:port` in a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        settings: ListenerSettings,
        nudge: Callable[[str], None],
        status: Callable[[], dict[str, Any]],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.server = _Server((host, port), settings, nudge, status, emit)
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="gray-watch-webhooks",
            daemon=True,
        )

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT_SECONDS  # a client that sends nothing does not keep a thread
    server_version = "gray-watch"

    def log_message(self, format: str, *args: Any) -> None:
        """Deliveries are reported as events, not as access-log lines on stderr."""

    def do_GET(self) -> None:
        if self.path.split("?")[0] != HEALTH_PATH:
            self._answer(404, {"ok": False, "reason": f"no such path {self.path!r}"})
            return
        self._answer(200, {"ok": True, **self.server.status()})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != WEBHOOK_PATH:
            self._answer(404, {"ok": False, "reason": f"POST deliveries to {WEBHOOK_PATH}"})
            return
        server = self.server
        try:
            body = self._body()
            headers = dict(self.headers.items())
            delivery = verify(server.settings.secret, headers, body, server.guard)
        except WebhookRefusedError as refused:
            status, reason = refused.status, refused.message
            server.emit({"event": "webhook_refused", "status": status, "reason": reason})
            self._answer(status, {"ok": False, "reason": reason})
            return
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._answer(400, {"ok": False, "reason": f"the body is not JSON: {exc}"})
            return
        ignored = relevance(payload, server.settings.model, server.settings.alias)
        server.emit({"event": "webhook", "delivery_id": delivery.delivery_id, "ignored": ignored})
        if ignored is not None:
            self._answer(200, {"ok": True, "ignored": ignored})
            return
        server.nudge(f"webhook {delivery.delivery_id}")
        self._answer(202, {"ok": True, "reason": "the watcher looks at the alias now"})

    def do_PUT(self) -> None:
        self._answer(405, {"ok": False, "reason": f"POST deliveries to {WEBHOOK_PATH}"})

    do_DELETE = do_PATCH = do_PUT

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise WebhookRefusedError(411, "a delivery needs a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            raise WebhookRefusedError(413, f"a delivery is at most {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(length))

    def _answer(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
