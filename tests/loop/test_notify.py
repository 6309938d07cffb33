"""Webhooks: Slack-compatible messages on the events a target asked for; failures never stop a rollout."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from gray.controller.notify import Notifier
from gray.controller.plan import NotifySpec

from .conftest import PLAN, Harness


class Hook:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.messages.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    running = Hook()
    yield running
    running.server.shutdown()


def test_rollout_posts_its_events_and_survives_a_dead_webhook(tmp_path: Path, hook: Hook) -> None:
    text = PLAN + (
        f'notify:\n  - {{url: "{hook.url}", events: [start, rollback, promote]}}\n'
        '  - {url: "http://127.0.0.1:9/dead"}\n'
    )
    harness = Harness(tmp_path, text)
    warnings: list[str] = []
    runner = harness.runner()
    runner.on_warning = warnings.append
    result = runner.run(harness.start())
    assert result.exit_code == 0
    events = [m["event"] for m in hook.messages]
    assert events == ["start", "promote"]  # `stage` was not asked for
    assert all(
        m["text"].startswith("gray ") and m["rollout_id"] == "fraud-test-0001"
        for m in hook.messages
    )
    # The failure names the webhook by its origin: a webhook's path is often its secret.
    assert any("http://127.0.0.1:9/…" in w for w in warnings)
    assert not any("/dead" in w for w in warnings)


def test_notifier_reports_http_errors(hook: Hook) -> None:
    failures = Notifier((NotifySpec(url="http://127.0.0.1:9/nothing-listens"),)).send(
        "rollback", "x", "r1"
    )
    assert failures and "failed" in failures[0]
    assert (
        Notifier((NotifySpec(url=hook.url, events=("promote",)),)).send("rollback", "x", "r1") == []
    )
    assert hook.messages == []
