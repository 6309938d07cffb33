"""The local journal: one fsynced JSON-lines file per rollout under GRAY_HOME, safe
for several writers through file locks."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from gray.controller.journal.events import (
    Command,
    Event,
    RolloutRecord,
    current_state,
    gray_home,
    print_warning,
)
from gray.controller.journal.latest import keep_full_state, line_state, with_full_states
from gray.controller.state import Phase, RolloutState

T = TypeVar("T")


class LocalJournal:
    """JSON lines under GRAY_HOME/rollouts/ID/: events, commands and the plan; the full
    state of the newest events beside them (`latest.py`), each event line holding numbers.

    Readers skip a damaged record (a line cut short by a kill -9, bytes that are
    not UTF-8, a record missing its fields or naming an unknown phase or event) and warn
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
        parsed = _parse_lines(path, _read_bytes(path), Event.from_dict, self.on_warning)
        return with_full_states(path.parent, [event for _, event in parsed], self.on_warning)

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
        first = min(terminal, key=lambda e: (e.at, e.seq)) if terminal else None
        return with_full_states(self.path.parent, [first], None)[0] if first else None

    def append(self, event: Event) -> None:
        # The full state first, then the line: a crash between the two leaves a
        # state.json one event ahead, which still holds the last line's as `previous`.
        terminal = event.state.get("phase") in _TERMINAL_PHASES
        keep_full_state(self.path.parent, event, terminal=terminal)
        _append_record(self.fd, {**event.to_dict(), "state": line_state(event.state)})


_TERMINAL_PHASES = frozenset(p.value for p in Phase if p.terminal)


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
