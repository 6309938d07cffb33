"""Webhooks: Slack-compatible messages on the events a target asked for; failures never stop a rollout."""

from __future__ import annotations

from pathlib import Path

from gray.controller.notify import Notifier
from gray.controller.plan.models import NotifySpec
from tests.receiver import Receiver

from .conftest import PLAN, Harness


def test_rollout_posts_its_events_and_survives_a_dead_webhook(
    tmp_path: Path, receiver: Receiver
) -> None:
    text = PLAN + (
        f'notify:\n  - {{url: "{receiver.url}/hook", events: [start, rollback, promote]}}\n'
        '  - {url: "http://127.0.0.1:9/dead"}\n'
    )
    harness = Harness(tmp_path, text)
    warnings: list[str] = []
    runner = harness.runner()
    runner.on_warning = warnings.append
    result = runner.run(harness.start())
    assert result.exit_code == 0
    messages = receiver.bodies("/hook")
    assert [m["event"] for m in messages] == ["start", "promote"]  # `stage` was not asked for
    assert all(
        m["text"].startswith("gray ") and m["rollout_id"] == "fraud-test-0001" for m in messages
    )
    # The failure names the webhook by its origin: a webhook's path is often its secret.
    assert any("http://127.0.0.1:9/…" in w for w in warnings)
    assert not any("/dead" in w for w in warnings)


def test_notifier_reports_http_errors(receiver: Receiver) -> None:
    failures = Notifier((NotifySpec(url="http://127.0.0.1:9/nothing-listens"),)).send(
        "rollback", "x", "r1"
    )
    assert failures and "failed" in failures[0]
    assert (
        Notifier((NotifySpec(url=f"{receiver.url}/hook", events=("promote",)),)).send(
            "rollback", "x", "r1"
        )
        == []
    )
    assert receiver.received == []


def test_an_unusable_webhook_url_is_reported_not_raised() -> None:
    failures = Notifier((NotifySpec(url="http://[::1/hook"),)).send("rollback", "x", "r1")
    assert len(failures) == 1 and "failed" in failures[0]
