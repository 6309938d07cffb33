"""The rollout journal: every event with the state after it, durable and shareable.

Two stores are written for each event, in this order:
- a local JSON-lines file under GRAY_HOME (default ~/.gray), appended and
  fsynced before the loop acts on the event, so a kill -9 loses nothing;
- an MLflow run per rollout in the experiment `gray-rollouts` (`mlflow_run.py`),
  so any machine that reaches the registry sees the rollout, can resume it, and
  can send it commands (approve, pause, abort).
A failed MLflow write is retried with the next event; the local file is the
source of truth for the controller that wrote it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from gray.controller.errors import JournalError, RolloutNotFoundError
from gray.controller.journal.events import (
    Command,
    Event,
    EventKind,
    RemoteJournal,
    RolloutRecord,
    actor,
    current_state,
)
from gray.controller.journal.local import LocalJournal
from gray.controller.redact import redact, redact_data
from gray.controller.state import RolloutState


class Journal:
    """The local journal plus, when given, the shared MLflow one."""

    def __init__(
        self,
        local: LocalJournal | None = None,
        remote: RemoteJournal | None = None,
        on_remote_error: Callable[[str], None] | None = None,
    ) -> None:
        self.local = local or LocalJournal()
        self.remote = remote
        self.on_remote_error = on_remote_error
        self._unsynced: list[Event] = []
        self._floor: dict[str, int] = {}

    def create(self, state: RolloutState, plan_text: str) -> None:
        self.local.create(state, plan_text)
        if self.remote is not None:
            try:
                self.remote.create(state, plan_text)
            except Exception as exc:  # the local journal holds it; say why the shared one does not
                raise JournalError(f"cannot create the rollout's MLflow run: {exc}") from None

    def append(
        self, state: RolloutState, event: EventKind, reason: str, data: dict[str, Any]
    ) -> Event:
        record, _ = self._append(state, event, reason, data, unless_terminal=False)
        return record

    def append_terminal(
        self, state: RolloutState, event: EventKind, reason: str, data: dict[str, Any]
    ) -> tuple[Event, bool]:
        """Append a terminal event unless the journal already holds one; idempotent.

        For the rollback paths (`gray rollback`, `abort`, a controller's own
        rollback): however many of them race on one rollout, in one process or
        many, the local journal gets exactly one terminal event. The check and
        the append happen under the events file's lock, so two callers cannot
        both see "no terminal event yet".

        `state.phase` must be terminal (else ValueError). Returns the terminal
        event in force, and True when this call wrote it (False: an earlier
        one, whose event is returned, already ended the rollout; nothing was
        written and nothing goes to MLflow). The lock covers this machine's
        journal: a rollback journaled only on another machine's disk is seen
        through the MLflow journal, where the first terminal state also wins.
        """
        if not state.phase.terminal:
            raise ValueError(f"append_terminal needs a terminal phase, got {state.phase.value}")
        return self._append(state, event, reason, data, unless_terminal=True)

    def _append(
        self,
        state: RolloutState,
        event: EventKind,
        reason: str,
        data: dict[str, Any],
        *,
        unless_terminal: bool,
    ) -> tuple[Event, bool]:
        kind = EventKind(event)  # a caller may name it by its string
        floor = self._seq_floor(state.rollout_id)
        # Reasons quote errors, and errors quote URLs: the journal keeps no credentials.
        snapshot, reason, data = redact_data(state.to_dict()), redact(reason), redact_data(data)

        def build(seq: int) -> Event:
            return Event(seq, time.time(), kind, reason, data, snapshot)

        try:
            record, written = self.local.append_next(
                state.rollout_id, build, floor=floor, unless_terminal=unless_terminal
            )
        except OSError as exc:
            raise JournalError(
                f"cannot write the local journal under {self.local.root}: {exc}"
            ) from None
        if written:
            self._unsynced.append(record)
            self._sync()
        return record, written

    def _seq_floor(self, rollout_id: str) -> int:
        """Sequence numbers continue the shared journal's when this machine has none yet
        (a rollout resumed on another machine); the local file's own are read under its lock."""
        if rollout_id not in self._floor:
            floor = 0
            if self.remote is not None and not self.local.has_events(rollout_id):
                record = self._remote_load(rollout_id)
                floor = max((e.seq for e in record.events), default=0) if record else 0
            self._floor[rollout_id] = floor
        return self._floor[rollout_id]

    def _sync(self) -> None:
        if self.remote is None:
            self._unsynced.clear()
            return
        while self._unsynced:
            try:
                self.remote.append(self._unsynced[0])
            except Exception as exc:  # retried with the next event; never stops the rollout
                self._warn(f"MLflow journal write failed, will retry: {exc}")
                return
            self._unsynced.pop(0)

    def _warn(self, text: str) -> None:
        if self.on_remote_error:
            self.on_remote_error(redact(text))

    def load(self, rollout_id: str) -> RolloutRecord:
        local = self.local.load(rollout_id)
        remote = None
        if self.remote is not None:
            try:
                remote = self._remote_load(rollout_id)
            except JournalError as exc:
                if local is None:
                    raise
                self._warn(f"{exc.message}; showing the local journal only")
        records = [r for r in (local, remote) if r is not None]
        if not records:
            raise RolloutNotFoundError(f"no rollout {rollout_id!r} in the local or MLflow journal")
        if local is not None and remote is not None:
            events = {(e.seq, e.at, e.event): e for r in records for e in r.events}
            merged = tuple(sorted(events.values(), key=lambda e: (e.at, e.seq)))
            state = current_state(merged)
            if not state.phase.terminal:
                # The newer side wins; the shared side's full state is `remote.state`
                # (its per-event copies leave out the judge's working set).
                remote_last = max((e.at for e in remote.events), default=0.0)
                local_last = max((e.at for e in local.events), default=0.0)
                state = remote.state if remote_last > local_last else local.state
            return RolloutRecord(state, merged, local.plan_text or remote.plan_text)
        return records[0]

    def _remote_load(self, rollout_id: str) -> RolloutRecord | None:
        assert self.remote is not None
        try:
            return self.remote.load(rollout_id)
        except Exception as exc:
            raise JournalError(f"cannot read rollout {rollout_id} from MLflow: {exc}") from None

    def list_states(self, model: str | None = None) -> list[RolloutState]:
        states = {s.rollout_id: s for s in self.local.list_states(model)}
        if self.remote is not None:
            try:
                for state in self.remote.list_states(model):
                    mine = states.get(state.rollout_id)
                    if mine is None or state.updated_at > mine.updated_at or state.phase.terminal:
                        states[state.rollout_id] = state
            except Exception as exc:  # the local journal still answers
                self._warn(f"cannot list rollouts in MLflow ({exc}); showing local ones only")
        return sorted(states.values(), key=lambda s: s.started_at, reverse=True)

    def active_for(self, model: str) -> list[RolloutState]:
        return [s for s in self.list_states(model) if not s.phase.terminal]

    def post_command(self, rollout_id: str, command: str, reason: str = "") -> Command:
        cmd = Command(uuid.uuid4().hex, command, actor(), redact(reason), time.time())
        self.local.post_command(rollout_id, cmd)
        if self.remote is not None:
            try:
                self.remote.post_command(rollout_id, cmd)
            except Exception as exc:
                raise JournalError(f"cannot post {command} to MLflow: {exc}") from None
        return cmd

    def commands(self, rollout_id: str) -> list[Command]:
        found = {c.id: c for c in self.local.commands(rollout_id)}
        if self.remote is not None:
            try:
                found.update({c.id: c for c in self.remote.commands(rollout_id)})
            except Exception as exc:  # a command will be seen at the next look
                self._warn(f"cannot read commands from MLflow: {exc}")
        return sorted(found.values(), key=lambda c: c.at)
