"""One typed sender per `notify` kind: the HTTP request that tells a target of a message.

Each request is a JSON POST; what differs is the body each service reads:

- `slack`: `{"text": ...}` in Slack's mrkdwn (also what Mattermost and Rocket.Chat
  incoming webhooks read), with `event` and `rollout_id` beside it;
- `teams`: a Microsoft Teams message with one Adaptive Card (Workflows webhooks and
  incoming webhooks both take it): title, sentence, the facts, the commands;
- `discord`: a Discord webhook message with one embed (fields for the stage, the
  traffic and each failing gate), mentions disabled;
- `pagerduty`: a PagerDuty Events API v2 event: a rollback or abort triggers an
  incident whose `dedup_key` is `gray-<rollout id>`; a promotion resolves that key and,
  for a retry, the retried rollout's key too;
- `webhook`: gray's own payload (`Message.to_dict`, documented in README), with the
  plan's `headers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gray.controller.notify.message import Message
from gray.controller.plan.models import NotifySpec
from gray.controller.redact import webhook_label

DISCORD_CONTENT_CHARACTERS = 2000
DISCORD_FIELD_CHARACTERS = 1024
PAGERDUTY_SUMMARY_CHARACTERS = 1024
FAILED = {"rollback", "abort"}
# Discord embed colours: red for a rollback, green for a promotion, grey otherwise.
COLOURS = {"rollback": 0xD93025, "abort": 0xD93025, "promote": 0x1E8E3E}


@dataclass(frozen=True)
class Outgoing:
    """One POST to make: where, what, and how to name the target in a failure (its
    origin only: a webhook's path is often its credential)."""

    kind: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind} notification to {webhook_label(self.url)}"


def outgoing(target: NotifySpec, message: Message) -> list[Outgoing]:
    """The requests that tell `target` of `message` (none when it did not ask for it)."""
    if message.event not in target.wanted:
        return []
    if target.kind == "pagerduty":
        return _pagerduty(target, message)
    body = {
        "slack": _slack,
        "teams": _teams,
        "discord": _discord,
        "webhook": _webhook,
    }[target.kind](message)
    headers = {"X-Gray-Event": message.event, "X-Gray-Rollout": message.rollout_id}
    if target.kind == "webhook":
        headers.update(target.headers)
    return [Outgoing(target.kind, target.address, body, headers)]


def _slack(message: Message) -> dict[str, Any]:
    lines = [f"*{message.title}*", *message.lines(commands=False)]
    lines += [f"look further: `{command}`" for command in message.commands]
    return {"text": "\n".join(lines), "event": message.event, "rollout_id": message.rollout_id}


def _facts(message: Message) -> list[tuple[str, str]]:
    facts = [
        ("Rollout", message.rollout_id),
        ("Versions", f"v{message.baseline} → v{message.candidate}"),
    ]
    if message.stage is not None:
        facts += [("Stage", message.stage.label), ("Traffic", message.stage.traffic)]
    facts += [(f"Gate {gate.gate}", gate.sentence) for gate in message.failing_gates]
    return facts


def _teams(message: Message) -> dict[str, Any]:
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": message.title,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                **({"color": "Attention"} if message.event in FAILED else {}),
            },
            {"type": "TextBlock", "text": message.text, "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in _facts(message)],
            },
            *(
                {"type": "TextBlock", "text": command, "fontType": "Monospace", "wrap": True}
                for command in message.commands
            ),
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _discord(message: Message) -> dict[str, Any]:
    fields = [
        {"name": name, "value": value[:DISCORD_FIELD_CHARACTERS], "inline": len(value) < 40}
        for name, value in _facts(message)
    ]
    fields.append({"name": "Look further", "value": "\n".join(f"`{c}`" for c in message.commands)})
    return {
        "content": message.title[:DISCORD_CONTENT_CHARACTERS],
        "embeds": [
            {
                "title": message.title,
                "description": message.text,
                "color": COLOURS.get(message.event, 0x5F6368),
                "fields": fields,
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def _webhook(message: Message) -> dict[str, Any]:
    return message.to_dict()


def dedup_key(rollout_id: str) -> str:
    """The PagerDuty incident of one rollout."""
    return f"gray-{rollout_id}"


def _pagerduty(target: NotifySpec, message: Message) -> list[Outgoing]:
    key = target.routing_key or ""
    if message.event in FAILED:
        summary = " ".join([message.title + ":", *(g.sentence for g in message.failing_gates)])
        if not message.failing_gates:
            summary = f"{message.title}: {message.text}"
        event = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": dedup_key(message.rollout_id),
            "payload": {
                "summary": summary[:PAGERDUTY_SUMMARY_CHARACTERS],
                "source": "gray",
                "severity": "error" if message.event == "rollback" else "warning",
                "component": message.model,
                "group": message.plan,
                "class": message.event,
                "custom_details": message.to_dict(),
            },
            "client": "gray",
        }
        return [Outgoing("pagerduty", target.address, event)]
    # A promotion closes its own rollout's incident, and the one of the rollout it retries.
    resolved = [message.rollout_id, *([message.retry_of] if message.retry_of else [])]
    return [
        Outgoing(
            "pagerduty",
            target.address,
            {"routing_key": key, "event_action": "resolve", "dedup_key": dedup_key(rollout)},
        )
        for rollout in resolved
    ]
