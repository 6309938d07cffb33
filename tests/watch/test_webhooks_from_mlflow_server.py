"""A real `mlflow server` (sqlite backend) sends its own registry webhooks to the watcher's
endpoint: a delivery signed with the watcher's secret makes it look at once (its interval
is an hour), while the server's unsigned and wrongly signed deliveries are refused."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gray.controller.lookup import open_journal
from gray.controller.plan.loading import parse_plan
from gray.controller.registry import Registry
from gray.controller.watch.decision import Decision
from gray.controller.watch.listener import ListenerSettings, WebhookListener
from gray.controller.watch.watcher import Started, Watcher
from tests.conftest import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]

SECRET = "shared-with-mlflow"
SOURCE = "s3://gray-watch-tests/model"  # never loaded: the watcher reads tags and aliases
PLAN = """\
name: watch-webhooks
model: {{name: {model}, baseline: "@champion", candidate: "@challenger", preprocessor: {{artifact: preprocessor}}}}
registry: {{uri: "{uri}"}}
router: {{type: gateway, url: "http://127.0.0.1:9", token: "unused"}}
interval: 1s
gates: [{{metric: error_rate, max_increase: 50%}}]
stages: [{{weight: 30%, dwell: 8s}}]
"""


class Events:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append(event)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.seen if match(e)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"nothing matched in {timeout}s: {self.seen}")


def no_start(decision: Decision) -> Started:
    raise AssertionError(f"nothing here is to be started: {decision}")


@pytest.fixture
def watching(mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[tuple[Watcher, str, Events]]:
    """A watcher of a model of its own on the server (looking once an hour) behind a webhook
    listener; its @champion and @challenger both name version 1, so nothing is due."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    name = f"watched-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    client.create_model_version(name, SOURCE)
    for alias in ("champion", "challenger"):
        client.set_registered_model_alias(name, alias, "1")
    plan = parse_plan(PLAN.format(model=name, uri=mlflow_server.uri))
    registry = Registry(mlflow_server.uri)
    events = Events()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRAY_HOME", str(tmp_path / "gray-home"))
        watcher = Watcher(plan, registry, open_journal(registry), no_start, events, 3600.0)
        listener = WebhookListener(
            "127.0.0.1",
            0,
            ListenerSettings(SECRET, name, "challenger"),
            watcher.nudge,
            watcher.status,
            events,
        ).start()
        loop = threading.Thread(target=watcher.run, daemon=True)
        loop.start()
        hooks = [
            client.create_webhook(
                name=f"gray-watch-{name}-{kind}",
                url=f"{listener.address}/webhook",
                events=["model_version_alias.created"],
                secret=secret,
            )
            for kind, secret in (("signed", SECRET), ("unsigned", None), ("other", "not-it"))
        ]
        try:
            events.wait_for(lambda e: e.get("trigger") == "start")
            yield watcher, name, events
        finally:
            for hook in hooks:
                client.delete_webhook(hook.webhook_id)
            watcher.stop()
            loop.join(timeout=10)
            listener.stop()


def test_the_servers_signed_delivery_wakes_the_watcher(
    watching: tuple[Watcher, str, Events], mlflow_server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    watcher, name, events = watching
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    # A new version registered without binding a preprocessor: the watcher must wait.
    unbound = client.create_model_version(name, SOURCE)
    client.set_registered_model_alias(name, "challenger", unbound.version)

    woke = events.wait_for(lambda e: e.get("trigger") == "webhook")
    assert woke["action"] == "wait" and woke["version"] == unbound.version
    assert "no bound preprocessor" in woke["reason"]
    accepted = events.wait_for(lambda e: e["event"] == "webhook")
    assert accepted["ignored"] is None and len(accepted["delivery_id"]) == 36
    deadline = time.monotonic() + 10
    refusals: set[str] = set()
    while len(refusals) < 2 and time.monotonic() < deadline:
        refused = [e for e in list(events.seen) if e["event"] == "webhook_refused"]
        refusals = {e["reason"].split(":")[0] for e in refused}
        time.sleep(0.05)
    assert refusals == {"unsigned delivery", "bad signature"}
    assert watcher.status()["last_decision"]["version"] == unbound.version
