"""Webhook notifications: a Slack-compatible JSON message per rollout event.

A webhook that fails is reported back to the caller and never stops a rollout.
Failures name the webhook by its origin only: its path is often the secret.
"""

from __future__ import annotations

import httpx

from gray.controller.plan.models import NotifySpec
from gray.controller.redact import redact, webhook_label

TIMEOUT_SECONDS = 5.0


class Notifier:
    def __init__(
        self, targets: tuple[NotifySpec, ...], *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.targets = targets
        self._transport = transport

    def send(self, event: str, text: str, rollout_id: str) -> list[str]:
        """Post to every target that wants `event`; return the failures, one line each."""
        failures: list[str] = []
        wanted = [t for t in self.targets if event in t.events]
        if not wanted:
            return failures
        payload = {
            "text": redact(f"gray {event}: {text}"),
            "event": event,
            "rollout_id": rollout_id,
        }
        with httpx.Client(timeout=TIMEOUT_SECONDS, transport=self._transport) as client:
            for target in wanted:
                try:
                    response = client.post(target.url, json=payload)
                    if response.status_code >= 400:
                        failures.append(
                            f"webhook {webhook_label(target.url)} answered {response.status_code}"
                        )
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    # A webhook's path is often its credential: name only its origin.
                    failures.append(
                        f"webhook {webhook_label(target.url)} failed: {redact(str(exc))}"
                    )
        return failures
