"""The shared journal's background thread: writes keep their order, a hung MLflow never
blocks the caller, and a failing one is retried and reported without flooding."""

from __future__ import annotations

import threading
import time
from typing import Any

from gray.controller.journal import Command, Event
from gray.controller.journal.background import BackgroundRemote


class SlowRemote:
    """A shared journal that hangs while `gate` is closed and fails `failures` times."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.failures = 0
        self.appended: list[int] = []
        self.command_reads = 0

    def _wait(self) -> None:
        self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")

    def append(self, event: Event) -> None:
        self._wait()
        self.appended.append(event.seq)

    def commands(self, rollout_id: str) -> list[Command]:
        self._wait()
        self.command_reads += 1
        return [Command("c1", "approve", "me", "", 1.0)]

    def create(self, *args: Any) -> None: ...
    def load(self, rollout_id: str) -> None: ...
    def list_states(self, model: str | None) -> list[Any]:
        return []

    def post_command(self, rollout_id: str, command: Command) -> None: ...


def event(seq: int) -> Event:
    return Event(seq, float(seq), "look", "", {}, {"rollout_id": "r-1"})


def test_a_hung_remote_never_blocks_and_catches_up_in_order() -> None:
    remote = SlowRemote()
    remote.gate.clear()  # MLflow hangs
    background = BackgroundRemote(remote, sleep=lambda s: None)
    started = time.monotonic()
    for seq in range(1, 4):
        background.append(event(seq))
    assert background.commands("r-1") == []  # nothing fetched yet, and no wait for it
    assert time.monotonic() - started < 0.5
    assert not background.drain(0.2)  # still hung: the caller is told, not blocked
    remote.gate.set()
    assert background.close(5.0)
    assert remote.appended == [1, 2, 3]


def test_failures_are_retried_in_order_and_reported_once() -> None:
    remote = SlowRemote()
    remote.failures = 3
    errors: list[str] = []
    background = BackgroundRemote(remote, errors.append, sleep=lambda s: None)
    background.append(event(1))
    background.append(event(2))
    assert background.close(5.0)
    assert remote.appended == [1, 2]
    assert len(errors) == 1 and "connection refused" in errors[0]


def test_commands_come_from_the_last_refresh() -> None:
    remote = SlowRemote()
    background = BackgroundRemote(remote, sleep=lambda s: None)
    background.commands("r-1")
    assert background.drain(5.0)
    assert [c.id for c in background.commands("r-1")] == ["c1"]
    background.close(5.0)
