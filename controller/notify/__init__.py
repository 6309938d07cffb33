"""Notifications: each rollout event the plan's `notify` targets asked for, told with its
numbers, to Slack-compatible webhooks, Microsoft Teams, Discord, PagerDuty or any JSON
webhook.

What is said is one `Message` (`message.py`: for a rollback, the failing gates'
sentences with estimate, interval and allowed margin, the stage, the traffic share and
the commands to look further); how each service is told is its sender (`senders.py`);
the requests go out from a background thread with retries (`delivery.py`), so a slow
or dead target never delays or fails a rollout. Failures name a target by its origin
only: a webhook's path is often its secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from gray.controller.notify.delivery import (
    DEFAULT_ATTEMPTS,
    DEFAULT_FIRST_PAUSE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    Delivery,
)
from gray.controller.notify.message import Message, message_for
from gray.controller.notify.senders import outgoing

if TYPE_CHECKING:
    from gray.controller.plan.models import NotifySpec, Plan
    from gray.controller.state import RolloutState

# How long a command that ends waits for notifications still being sent or retried.
CLOSE_WAIT_SECONDS = 10.0

__all__ = ["CLOSE_WAIT_SECONDS", "Message", "Notifier"]


class Notifier:
    """Tells the plan's targets; `transport` lets tests swap the network."""

    def __init__(
        self,
        targets: tuple[NotifySpec, ...],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        attempts: int = DEFAULT_ATTEMPTS,
        first_pause: float = DEFAULT_FIRST_PAUSE_SECONDS,
        close_wait: float = CLOSE_WAIT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.targets = targets
        self.close_wait = close_wait
        self._delivery = Delivery(
            timeout=timeout, attempts=attempts, first_pause=first_pause, transport=transport
        )

    def send(self, event: str, text: str, plan: Plan, state: RolloutState) -> None:
        """Queue `event` for every target that wants it; returns at once."""
        wanted = [target for target in self.targets if event in target.wanted]
        if not wanted:
            return
        message = message_for(event, text, plan, state)
        for target in wanted:
            for request in outgoing(target, message):
                self._delivery.submit(request)

    def take_failures(self) -> list[str]:
        """Notifications given up on since the last call (after their retries), one line
        each, for the caller to show from its own thread."""
        return self._delivery.take_failures()

    def close(self, wait: float | None = None) -> list[str]:
        """Give what is still queued at most `wait` seconds (default `close_wait`); the
        failures and what was left unsent."""
        return self._delivery.close(self.close_wait if wait is None else wait)
