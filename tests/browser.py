"""Debian's Chromium, headless, driven over the DevTools protocol: load a page from disk,
collect what its JavaScript threw or logged as an error, and take a screenshot.

No browser is downloaded: the one on the machine runs with networking features off
and a throwaway profile, and pages are opened from files only.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import websocket

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


@dataclass
class PageVisit:
    """What loading one page gave: its errors, how many charts it drew, a screenshot."""

    errors: list[str] = field(default_factory=list)
    charts: int = 0
    screenshot: bytes = b""


class Chromium:
    """One headless browser for many pages: each page gets a fresh tab."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.socket = websocket.create_connection(url, timeout=30)
        self._ids = itertools.count(1)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send one command; its result, and the events that arrived before it."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        events: list[dict[str, Any]] = []
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {}), events
            events.append(reply)

    def _wait_for(self, event: str, session: str, timeout: float) -> list[dict[str, Any]]:
        """Events until `event` arrives for `session` (all of them, `event` last)."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.socket.settimeout(max(deadline - time.monotonic(), 0.01))
            reply = json.loads(self.socket.recv())
            seen.append(reply)
            if reply.get("method") == event and reply.get("sessionId") == session:
                return seen
        raise TimeoutError(f"no {event} within {timeout}s")

    def visit(self, page: Path, *, width: int = 1280, height: int = 2000) -> PageVisit:
        """Open `page` from disk in a new tab; what it threw, drew and looked like."""
        target, _ = self._call("Target.createTarget", {"url": "about:blank"})
        attached, _ = self._call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        events: list[dict[str, Any]] = []
        try:
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                events += self._call(domain, session=session)[1]
            events += self._call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session,
            )[1]
            events += self._call("Page.navigate", {"url": page.resolve().as_uri()}, session)[1]
            events += self._wait_for("Page.loadEventFired", session, timeout=30)
            result, more = self._call(
                "Runtime.evaluate",
                {"expression": "document.querySelectorAll('.js-plotly-plot .main-svg').length"},
                session,
            )
            events += more
            shot, more = self._call("Page.captureScreenshot", {"format": "png"}, session)
            events += more
        finally:
            self._call("Target.closeTarget", {"targetId": target["targetId"]})
        return PageVisit(
            errors=page_errors(events, session),
            charts=int(result.get("result", {}).get("value") or 0),
            screenshot=base64.b64decode(shot["data"]),
        )


def page_errors(events: list[dict[str, Any]], session: str) -> list[str]:
    """Uncaught exceptions, console.error calls and error log entries of one page."""
    errors = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description") or details.get("text")
            errors.append(f"exception: {thrown}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            errors.append("console.error: " + " ".join(args))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} ({entry.get('url', '')})")
    return errors


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    """A headless Chromium with a throwaway profile, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="gray-chromium-") as profile:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = _devtools_url(process)
        browser = Chromium(process, url)
        try:
            yield browser
        finally:
            browser.close()


def _devtools_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        found = LISTENING.search(line)
        if found:
            # Chromium keeps logging; a pipe nobody reads would fill up and stall it.
            threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
            return found.group(1)
    process.kill()
    raise RuntimeError("Chromium did not start its DevTools server:\n" + "".join(lines[-20:]))


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass
