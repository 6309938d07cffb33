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

import dataclasses
import fcntl
import functools
import getpass
import json
import os
import socket
import sys
import time
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gray.controller.errors import JournalError, RolloutNotFoundError
from gray.controller.redact import redact, redact_data
from gray.controller.state import Phase, RolloutState

T = TypeVar("T")


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
    def from_dict(cls, data: object) -> Event:
        """An event as stored; raises ValueError saying what is wrong with a damaged one."""
        record = _mapping(data, "a journal event")
        state = _mapping(_required(record, "state"), "'state'")
        check_state(state)
        return cls(
            seq=_typed(record, "seq", int),
            at=float(_typed(record, "at", (int, float))),
            event=_typed(record, "event", str),
            reason=str(record.get("reason") or ""),
            data=dict(_mapping(record.get("data") or {}, "'data'")),
            state=dict(state),
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
    def from_dict(cls, data: object) -> Command:
        """A command as stored; raises ValueError saying what is wrong with a damaged one."""
        record = _mapping(data, "a command")
        return cls(
            id=_typed(record, "id", str),
            command=_typed(record, "command", str),
            actor=str(record.get("actor") or ""),
            reason=str(record.get("reason") or ""),
            at=float(_typed(record, "at", (int, float)) if "at" in record else 0.0),
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
    """JSON lines under GRAY_HOME/rollouts/ID/: events, commands and the plan.

    Readers skip a damaged record (a line cut short by a kill -9, bytes that are
    not UTF-8, a record missing its fields or naming an unknown phase) and warn
    with the file and line, so one bad line never stops `gray rollback`, `list`
    or `status`. Writers hold an exclusive lock on the events file while they
    read the last sequence number and append, so concurrent writers (several
    `gray rollback` commands, a controller and an operator) never share a number,
    and a write after a torn last line starts on a fresh line.
    """

    def __init__(
        self, root: Path | None = None, on_warning: Callable[[str], None] | None = None
    ) -> None:
        self.root = (root or gray_home()) / "rollouts"
        self._report = on_warning or print_warning
        self._warned: set[str] = set()  # `status --watch` reloads every second: say it once

    def _dir(self, rollout_id: str) -> Path:
        return self.root / rollout_id

    def on_warning(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self._report(text)

    def create(self, state: RolloutState, plan_text: str) -> None:
        folder = self._dir(state.rollout_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.yaml").write_text(plan_text, encoding="utf-8")

    def append_next(
        self,
        rollout_id: str,
        build: Callable[[int], Event],
        *,
        floor: int = 0,
        unless_terminal: bool = False,
    ) -> tuple[Event, bool]:
        """Append `build(seq)` with the next sequence number, under the file lock.

        `seq` is one above both the last valid record and `floor`. With
        `unless_terminal`, nothing is written when the journal already holds a
        terminal state; the first such event is returned instead. Returns the
        event now in force and whether this call wrote it.
        """
        with self._locked(rollout_id) as events:
            if unless_terminal:
                existing = events.first_terminal()
                if existing is not None:
                    return existing, False
            event = build(max(events.last_seq(), floor) + 1)
            events.append(event)
            return event, True

    def has_events(self, rollout_id: str) -> bool:
        path = self._dir(rollout_id) / "events.jsonl"
        return path.exists() and path.stat().st_size > 0

    def load(self, rollout_id: str) -> RolloutRecord | None:
        folder = self._dir(rollout_id)
        events = self._events(folder / "events.jsonl")
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
            try:
                record = self.load(folder.name)
            except (OSError, UnicodeDecodeError) as exc:
                # Another rollout's unreadable journal must not hide this machine's others.
                self.on_warning(f"{folder}: skipped an unreadable rollout journal ({exc})")
                continue
            if record and (model is None or record.state.model == model):
                states.append(record.state)
        return states

    def post_command(self, rollout_id: str, command: Command) -> None:
        folder = self._dir(rollout_id)
        if folder.exists():
            _append_line(folder / "commands.jsonl", command.to_dict())

    def commands(self, rollout_id: str) -> list[Command]:
        path = self._dir(rollout_id) / "commands.jsonl"
        return [
            command
            for _, command in _parse_lines(
                path, _read_bytes(path), Command.from_dict, self.on_warning
            )
        ]

    def _events(self, path: Path) -> list[Event]:
        return [
            event
            for _, event in _parse_lines(path, _read_bytes(path), Event.from_dict, self.on_warning)
        ]

    @contextmanager
    def _locked(self, rollout_id: str) -> Iterator[_LockedEvents]:
        folder = self._dir(rollout_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "events.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
            yield _LockedEvents(fd, path)
        finally:
            os.close(fd)


class _LockedEvents:
    """An events file open and exclusively locked: read its end, append a line."""

    _CHUNK = 64 * 1024

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def last_seq(self) -> int:
        """The sequence number of the last valid record, reading backwards from the end."""
        end = os.fstat(self.fd).st_size
        carry = b""  # the unread start of a line that began in an earlier chunk
        while end > 0:
            start = max(0, end - self._CHUNK)
            pieces = (os.pread(self.fd, end - start, start) + carry).split(b"\n")
            complete, carry = (pieces, b"") if start == 0 else (pieces[1:], pieces[0])
            for raw in reversed(complete):
                event = _quiet_event(raw)
                if event is not None:
                    return event.seq
            end = start
        return 0

    def first_terminal(self) -> Event | None:
        size = os.fstat(self.fd).st_size
        raw = os.pread(self.fd, size, 0) if size else b""
        events = [e for _, e in _parse_lines(self.path, raw, Event.from_dict, None)]
        terminal = [e for e in events if e.state.get("phase") in _TERMINAL_PHASES]
        return min(terminal, key=lambda e: (e.at, e.seq)) if terminal else None

    def append(self, event: Event) -> None:
        _append_record(self.fd, event.to_dict())


_TERMINAL_PHASES = frozenset(p.value for p in Phase if p.terminal)


def print_warning(text: str) -> None:
    """The default warning for damaged records: on stderr, as stdout may carry JSON."""
    sys.stderr.write(f"warning: {text}\n")
    sys.stderr.flush()


def current_state(events: Iterable[Event]) -> RolloutState:
    """The state a journal stands for: its first terminal state, else its newest.

    A terminal phase never changes again, so an operator's rollback written while
    a stale controller still appended looks is not overwritten by those looks.
    """
    ordered = sorted(events, key=lambda e: (e.at, e.seq))
    for index, event in enumerate(ordered):
        state = RolloutState.from_dict(event.state)
        if state.phase.terminal:
            if state.phase is Phase.PROMOTED:
                # A promotion can still be undone (`gray rollback --to previous`).
                later = (RolloutState.from_dict(e.state) for e in ordered[index + 1 :])
                return next((s for s in later if s.phase is Phase.REVERTED), state)
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
        self._floor: dict[str, int] = {}

    def create(self, state: RolloutState, plan_text: str) -> None:
        self.local.create(state, plan_text)
        if self.remote is not None:
            try:
                self.remote.create(state, plan_text)
            except Exception as exc:  # the local journal holds it; say why the shared one does not
                raise JournalError(f"cannot create the rollout's MLflow run: {exc}") from None

    def append(self, state: RolloutState, event: str, reason: str, data: dict[str, Any]) -> Event:
        record, _ = self._append(state, event, reason, data, unless_terminal=False)
        return record

    def append_terminal(
        self, state: RolloutState, event: str, reason: str, data: dict[str, Any]
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
        event: str,
        reason: str,
        data: dict[str, Any],
        *,
        unless_terminal: bool,
    ) -> tuple[Event, bool]:
        floor = self._seq_floor(state.rollout_id)
        # Reasons quote errors, and errors quote URLs: the journal keeps no credentials.
        snapshot, reason, data = redact_data(state.to_dict()), redact(reason), redact_data(data)

        def build(seq: int) -> Event:
            return Event(seq, time.time(), event, reason, data, snapshot)

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


def _append_line(path: Path, payload: dict[str, Any]) -> None:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _append_record(fd, payload)
    finally:
        os.close(fd)


def _append_record(fd: int, payload: dict[str, Any]) -> None:
    """Append `payload` as one JSON line to the locked file `fd`, and fsync it."""
    size = os.fstat(fd).st_size
    # A line torn by a crash mid-write has no newline: end it, so this record
    # is a line of its own instead of being glued to the fragment.
    fresh = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
    _write_all(fd, fresh + _encode(payload))
    os.fsync(fd)


def _encode(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _parse_lines(
    path: Path,
    raw: bytes,
    parse: Callable[[object], T],
    on_warning: Callable[[str], None] | None,
) -> list[tuple[int, T]]:
    """Every valid record with its 1-based line number; each damaged one is skipped with
    a warning that names the file and line."""
    found: list[tuple[int, T]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            found.append((number, parse(json.loads(line.decode("utf-8")))))
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        except json.JSONDecodeError:
            problem = "not JSON; a line cut short by a crash mid-write"
        except ValueError as exc:
            problem = str(exc)
        else:
            continue
        if on_warning is not None:
            on_warning(f"{path}:{number}: skipped a damaged journal record ({problem})")
    return found


def _quiet_event(raw: bytes) -> Event | None:
    if not raw.strip():
        return None
    try:
        return Event.from_dict(json.loads(raw.decode("utf-8")))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return None


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _required(record: dict[str, Any], key: str) -> object:
    if key not in record:
        raise ValueError(f"missing {key!r}")
    return record[key]


def _typed(record: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = _required(record, key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{key!r} has the wrong type ({type(value).__name__})")
    return value


def check_state(data: dict[str, Any]) -> None:
    """Raise ValueError when a stored state is not one `RolloutState.from_dict` can stand for:
    a required field missing, a field of the wrong type, or a phase gray does not know."""
    for name, kinds in _state_types().items():
        if name not in data:
            if name in _STATE_REQUIRED:
                raise ValueError(f"state is missing {name!r}")
            continue
        value = data[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"state.{name} has the wrong type ({type(value).__name__})")
    phase = data.get("phase", Phase.STARTING.value)
    if phase not in _PHASES:
        raise ValueError(f"unknown phase {phase!r} (known: {', '.join(sorted(_PHASES))})")


_PHASES = frozenset(p.value for p in Phase)
_STATE_REQUIRED = frozenset(
    f.name
    for f in dataclasses.fields(RolloutState)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


@functools.cache
def _state_types() -> dict[str, tuple[type, ...]]:
    """The JSON types each RolloutState field may hold, from its annotations."""
    hints = typing.get_type_hints(RolloutState)
    return {f.name: _json_types(hints[f.name]) for f in dataclasses.fields(RolloutState)}


def _json_types(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _json_types(arg))
    if hint is float:
        return (int, float)
    base = origin or hint
    if base is tuple:
        return (list, tuple)
    if isinstance(base, type) and issubclass(base, str):
        return (str,)
    return (base,) if isinstance(base, type) else (object,)
