"""Notifications against a real local HTTP receiver: every sender's message carries the
numbers, PagerDuty's incident opens on a rollback and closes on a promotion, and a
dead, slow or failing target is retried in the background and never holds a rollout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gray.controller.errors import PlanError
from gray.controller.notify import Notifier
from gray.controller.plan.loading import parse_plan
from gray.controller.plan.models import NotifySpec
from gray.controller.runner import RunResult
from gray.controller.state import Phase
from tests.fakes import VersionBehaviour, rollout_state
from tests.receiver import Receiver

from .conftest import PLAN, Harness

DEAD = "http://127.0.0.1:9/secret-path"  # nothing listens on the discard port
FAST = {"timeout": 0.3, "attempts": 3, "first_pause": 0.02, "close_wait": 2.0}


def every_kind(receiver: Receiver) -> str:
    url = receiver.url
    return (
        "notify:\n"
        f'  - {{url: "{url}/slack"}}\n'
        f'  - {{kind: teams, url: "{url}/teams", events: [rollback, promote]}}\n'
        f'  - {{kind: discord, url: "{url}/discord"}}\n'
        f'  - {{kind: pagerduty, url: "{url}/pd", routing_key: "R0UTING"}}\n'
        f'  - {{kind: webhook, url: "{url}/hook", headers: {{Authorization: "Bearer t0k"}}}}\n'
        f'  - {{url: "{DEAD}"}}\n'
    )


def run(harness: Harness, candidate_errors: float, **state: object) -> tuple[RunResult, list[str]]:
    harness.metrics.behaviour["2"] = VersionBehaviour(error_rate=candidate_errors)
    runner = harness.runner()
    runner.notifier = Notifier(harness.plan.notify, **FAST)  # type: ignore[arg-type]
    warnings: list[str] = []
    runner.on_warning = warnings.append
    return runner.run(harness.start(**state)), warnings


@pytest.fixture
def rolled_back(tmp_path: Path, receiver: Receiver) -> tuple[RunResult, list[str], Receiver]:
    result, warnings = run(Harness(tmp_path, PLAN + every_kind(receiver)), candidate_errors=0.2)
    assert result.state.phase is Phase.ROLLED_BACK
    return result, warnings, receiver


def last(receiver: Receiver, path: str) -> dict[str, Any]:
    return receiver.bodies(path)[-1]


def test_a_rollback_tells_every_kind_the_failing_gate_the_stage_and_the_commands(
    rolled_back: tuple[RunResult, list[str], Receiver],
) -> None:
    result, _, receiver = rolled_back
    rollout = result.state.rollout_id
    [verdict] = [v for v in result.state.last_verdict["verdicts"] if v["outcome"] == "fail"]  # type: ignore[index]
    sentence = verdict["sentence"]
    assert "confidence" in sentence and "allowed" in sentence  # estimate, interval, margin

    slack = last(receiver, "/slack")
    assert slack["event"] == "rollback" and slack["rollout_id"] == rollout
    for words in (sentence, "stage 1/3 (10%)", "10% of requests answered by the candidate"):
        assert words in slack["text"]
    assert f"`gray rollout report {rollout}`" in slack["text"]
    assert f"`gray rollout status {rollout}`" in slack["text"]

    card = last(receiver, "/teams")["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    facts = {f["title"]: f["value"] for f in card["content"]["body"][2]["facts"]}
    assert facts["Gate error_rate"] == sentence and facts["Stage"] == "stage 1/3 (10%)"
    texts = [block.get("text") for block in card["content"]["body"]]
    assert f"gray rollout report {rollout}" in texts

    discord = last(receiver, "/discord")
    embed = discord["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Gate error_rate"] == sentence and fields["Traffic"].startswith("10%")
    assert f"gray rollout status {rollout}" in fields["Look further"]
    assert discord["allowed_mentions"] == {"parse": []}

    webhook = last(receiver, "/hook")
    [gate] = webhook["failing_gates"]
    assert gate["sentence"] == sentence
    assert (gate["estimate"], gate["interval"], gate["allowed"]) == (
        verdict["estimate"],
        verdict["interval"],
        verdict["allowed"],
    )
    assert webhook["stage"] == {
        "number": 1,
        "stages": 3,
        "name": "10%",
        "weight": 0.1,
        "mirror": 0.0,
    }
    assert webhook["commands"] == [
        f"gray rollout report {rollout}",
        f"gray rollout status {rollout}",
    ]
    headers = next(r.headers for r in receiver.received if r.path == "/hook")
    assert headers["Authorization"] == "Bearer t0k" and headers["X-Gray-Event"] == "start"


def test_pagerduty_triggers_one_incident_keyed_by_the_rollout(
    rolled_back: tuple[RunResult, list[str], Receiver],
) -> None:
    result, _, receiver = rolled_back
    [trigger] = receiver.bodies("/pd")  # start and stage are not PagerDuty's events
    assert trigger["routing_key"] == "R0UTING" and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == f"gray-{result.state.rollout_id}"
    payload = trigger["payload"]
    assert payload["severity"] == "error" and payload["source"] == "gray"
    assert "error rate" in payload["summary"] and payload["component"] == "fraud"
    assert payload["custom_details"]["failing_gates"][0]["gate"] == "error_rate"


def test_a_dead_target_is_reported_by_its_origin_and_the_others_still_hear(
    rolled_back: tuple[RunResult, list[str], Receiver],
) -> None:
    result, warnings, receiver = rolled_back
    assert result.exit_code == 1  # the rollback was not held up by the dead target
    dead = [w for w in warnings if "127.0.0.1:9" in w]
    assert dead and all("after 3 attempts" in w for w in dead)
    assert not any("secret-path" in w for w in warnings)
    assert {"/slack", "/teams", "/discord", "/pd", "/hook"} <= set(receiver.paths())


def test_a_promotion_resolves_the_incident_of_the_rollout_it_retries(
    tmp_path: Path, receiver: Receiver
) -> None:
    target = f'notify:\n  - {{kind: pagerduty, url: "{receiver.url}/pd", routing_key: "R"}}\n'
    result, warnings = run(Harness(tmp_path, PLAN + target), 0.01, retry_of="fraud-old-0001")
    assert result.state.phase is Phase.PROMOTED and warnings == []
    resolves = receiver.bodies("/pd")
    assert [(r["event_action"], r["dedup_key"]) for r in resolves] == [
        ("resolve", "gray-fraud-test-0001"),
        ("resolve", "gray-fraud-old-0001"),
    ]


def notifier(*targets: NotifySpec, **options: Any) -> Notifier:
    return Notifier(targets, **{**FAST, **options})


def told(sender: Notifier, event: str = "rollback") -> float:
    """Seconds `send` took (the delivery happens in the background)."""
    plan = parse_plan(PLAN, "plan.yaml", environ={})
    started = time.monotonic()
    sender.send(event, "rolled back: x", plan, rollout_state("r1"))
    return time.monotonic() - started


def test_a_failing_target_is_retried_with_backoff_until_it_answers(receiver: Receiver) -> None:
    receiver.reply("/flaky", 503, 429, 200)
    sender = notifier(NotifySpec(kind="webhook", url=f"{receiver.url}/flaky"))
    told(sender)
    assert sender.close() == []
    assert receiver.paths() == ["/flaky"] * 3


def test_a_refusal_is_not_retried_and_is_reported(receiver: Receiver) -> None:
    receiver.reply("/gone", 404)
    sender = notifier(NotifySpec(url=f"{receiver.url}/gone"))
    told(sender)
    [failure] = sender.close()
    assert failure == f"slack notification to {receiver.url}/… answered 404"
    assert receiver.paths() == ["/gone"]


def test_a_slow_target_never_holds_the_caller(receiver: Receiver) -> None:
    receiver.reply("/slow", 200, delay=1.0)
    sender = notifier(NotifySpec(kind="discord", url=f"{receiver.url}/slow"), attempts=2)
    assert told(sender) < 0.05
    assert sender.take_failures() == []  # still being tried
    [failure] = sender.close(wait=1.0)
    assert "timed out after 2 attempts" in failure
    assert receiver.paths() == ["/slow", "/slow"]


def test_what_is_still_unsent_at_exit_is_said(receiver: Receiver) -> None:
    receiver.reply("/slow", 200, delay=0.5)
    sender = notifier(NotifySpec(url=f"{receiver.url}/slow"), timeout=2.0)
    told(sender)
    deadline = time.monotonic() + 2.0
    while not receiver.paths() and time.monotonic() < deadline:
        time.sleep(0.01)  # the request is in flight, its answer on the way
    [line] = sender.close(wait=0.1)
    assert "still unanswered after 0.1s" in line


def test_an_unusable_url_is_reported_not_raised() -> None:
    sender = notifier(NotifySpec(url="http://[::1/hook"))
    told(sender)
    [failure] = sender.close()
    assert "failed" in failure


NOTIFY_PLAN = PLAN + "notify:\n  - ENTRY\n"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{kind: telegram, url: 'https://x'}",
            "plan.yaml:15:12: notify[0].kind: expected one of slack, teams, discord, "
            "pagerduty, webhook, got 'telegram'",
        ),
        (
            "{kind: pagerduty}",
            "plan.yaml:15:5: notify[0]: a pagerduty notification needs routing_key",
        ),
        (
            "{kind: pagerduty, routing_key: k, events: [start, rollback]}",
            "plan.yaml:15:47: notify[0].events: pagerduty takes rollback, abort, promote",
        ),
        ("{kind: teams}", "plan.yaml:15:5: notify[0]: a teams notification needs its webhook url"),
        (
            "{url: 'https://x', headers: {A: b}}",
            "plan.yaml:15:33: notify[0].headers: headers are for kind webhook",
        ),
        (
            "{url: 'https://x', routing_key: k}",
            "plan.yaml:15:37: notify[0].routing_key: routing_key is for pagerduty, not slack",
        ),
    ],
)
def test_a_bad_notify_entry_is_refused_at_validation(entry: str, expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(NOTIFY_PLAN.replace("ENTRY", entry), "plan.yaml", environ={})
    rendered = [problem.render() for problem in caught.value.problems]
    assert any(line.startswith(expected) for line in rendered), rendered
