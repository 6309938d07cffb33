"""The rollout journal: every event with the state after it, durable and shareable.

Two stores are written for each event, in this order:
- a local JSON-lines file under GRAY_HOME (default ~/.gray), appended and
  fsynced before the loop acts on the event, so a kill -9 loses nothing;
- an MLflow run per rollout in the experiment `gray-rollouts` (`journal_mlflow`),
  so any machine that reaches the registry sees the rollout, can resume it, and
  can send it commands (approve, pause, abort).
A failed MLflow write is retried with the next event; the local file is the
source of truth for the controller that wrote it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gray.controller.errors import JournalError, RolloutNotFoundError
from gray.controller.state import RolloutState


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    event: str
    reason: str
    data: dict[str, Any]
    state: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "event": self.event,
            "reason": self.reason,
            "data": self.data,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            seq=int(data["seq"]),
            at=float(data["at"]),
            event=str(data["event"]),
            reason=str(data.get("reason", "")),
            data=dict(data.get("data") or {}),
            state=dict(data["state"]),
        )


@dataclass(frozen=True)
class Command:
    id: str
    command: str
    actor: str
    reason: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Command:
        return cls(
            id=str(data["id"]),
            command=str(data["command"]),
            actor=str(data.get("actor", "")),
            reason=str(data.get("reason", "")),
            at=float(data.get("at", 0.0)),
        )


@dataclass(frozen=True)
class RolloutRecord:
    """What a journal holds about one rollout."""

    state: RolloutState
    events: tuple[Event, ...]
    plan_text: str


class RemoteJournal(Protocol):
    def create(self, state: RolloutState, plan_text: str) -> None: ...
    def append(self, event: Event) -> None: ...
    def load(self, rollout_id: str) -> RolloutRecord | None: ...
    def list_states(self, model: str | None) -> list[RolloutState]: ...
    def post_command(self, rollout_id: str, command: Command) -> None: ...
    def commands(self, rollout_id: str) -> list[Command]: ...


def gray_home() -> Path:
    return Path(os.environ.get("GRAY_HOME") or Path.home() / ".gray")


def actor() -> str:
    """Who is acting, for the journal and alias history: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def new_rollout_id(model: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{model}-{stamp}-{uuid.uuid4().hex[:4]}"


class LocalJournal:
    """JSON lines under GRAY_HOME/rollouts/ID/: events, commands and the plan."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or gray_home()) / "rollouts"

    def _dir(self, rollout_id: str) -> Path:
        return self.root / rollout_id

    def create(self, state: RolloutState, plan_text: str) -> None:
        folder = self._dir(state.rollout_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.yaml").write_text(plan_text, encoding="utf-8")

    def append(self, event: Event) -> None:
        folder = self._dir(event.state["rollout_id"])
        folder.mkdir(parents=True, exist_ok=True)
        _append_line(folder / "events.jsonl", event.to_dict())

    def load(self, rollout_id: str) -> RolloutRecord | None:
        folder = self._dir(rollout_id)
        events = [Event.from_dict(d) for d in _read_lines(folder / "events.jsonl")]
        if not events:
            return None
        plan_file = folder / "plan.yaml"
        plan_text = plan_file.read_text(encoding="utf-8") if plan_file.exists() else ""
        return RolloutRecord(current_state(events), tuple(events), plan_text)

    def list_states(self, model: str | None) -> list[RolloutState]:
        if not self.root.exists():
            return []
        states = []
        for folder in sorted(self.root.iterdir()):
            record = self.load(folder.name)
            if record and (model is None or record.state.model == model):
                states.append(record.state)
        return states

    def post_command(self, rollout_id: str, command: Command) -> None:
        folder = self._dir(rollout_id)
        if folder.exists():
            _append_line(folder / "commands.jsonl", command.to_dict())

    def commands(self, rollout_id: str) -> list[Command]:
        return [Command.from_dict(d) for d in _read_lines(self._dir(rollout_id) / "commands.jsonl")]


def current_state(events: Iterable[Event]) -> RolloutState:
    """The state a journal stands for: its first terminal state, else its newest.

    A terminal phase never changes again, so an operator's rollback written while
    a stale controller still appended looks is not overwritten by those looks.
    """
    ordered = sorted(events, key=lambda e: (e.at, e.seq))
    for event in ordered:
        state = RolloutState.from_dict(event.state)
        if state.phase.terminal:
            return state
    return RolloutState.from_dict(ordered[-1].state)


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
        self._seq: dict[str, int] = {}

    def create(self, state: RolloutState, plan_text: str) -> None:
        self.local.create(state, plan_text)
        if self.remote is not None:
            try:
                self.remote.create(state, plan_text)
            except Exception as exc:  # the local journal holds it; say why the shared one does not
                raise JournalError(f"cannot create the rollout's MLflow run: {exc}") from None

    def append(self, state: RolloutState, event: str, reason: str, data: dict[str, Any]) -> Event:
        seq = self._next_seq(state.rollout_id)
        record = Event(seq, time.time(), event, reason, data, state.to_dict())
        try:
            self.local.append(record)
        except OSError as exc:
            raise JournalError(
                f"cannot write the local journal under {self.local.root}: {exc}"
            ) from None
        self._unsynced.append(record)
        self._sync()
        return record

    def _next_seq(self, rollout_id: str) -> int:
        if rollout_id not in self._seq:
            record = self.local.load(rollout_id)
            if record is None and self.remote is not None:
                record = self._remote_load(rollout_id)
            self._seq[rollout_id] = max((e.seq for e in record.events), default=0) if record else 0
        self._seq[rollout_id] += 1
        return self._seq[rollout_id]

    def _sync(self) -> None:
        if self.remote is None:
            self._unsynced.clear()
            return
        while self._unsynced:
            try:
                self.remote.append(self._unsynced[0])
            except Exception as exc:  # retried with the next event; never stops the rollout
                if self.on_remote_error:
                    self.on_remote_error(f"MLflow journal write failed, will retry: {exc}")
                return
            self._unsynced.pop(0)

    def _warn(self, text: str) -> None:
        if self.on_remote_error:
            self.on_remote_error(text)

    def flush(self) -> bool:
        """Try once more to write what the shared journal misses; True when nothing is left."""
        self._sync()
        return not self._unsynced

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
        cmd = Command(uuid.uuid4().hex, command, actor(), reason, time.time())
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
                if self.on_remote_error:
                    self.on_remote_error(f"cannot read commands from MLflow: {exc}")
        return sorted(found.values(), key=lambda c: c.at)


def _append_line(path: Path, payload: dict[str, Any]) -> None:
    line = json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            # A line cut short by a crash mid-write: everything before it is intact.
            continue
    return items
