"""Journal records: events, commands, what a journal holds, and the checks a stored one passes."""

from __future__ import annotations

import dataclasses
import functools
import getpass
import os
import socket
import sys
import time
import types
import typing
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from gray.controller.state import Phase, RolloutState


class EventKind(StrEnum):
    """What a journal event records. The values are the strings journals hold: never
    rename one, or journals written before the rename stop loading."""

    # a rollout's course, written by the loop
    STARTED = "started"
    RESUMED = "resumed"
    WATCHING = "watching"  # a detached watcher judges a stage that holds traffic
    ROUTE_VERIFIED = "route_verified"  # a resumed controller re-confirmed the stage's route
    STAGE_STARTED = "stage_started"
    LOOK = "look"  # one periodic judgement of the gates, with its numbers
    NODATA_HOLD = "nodata_hold"
    STAGE_EXTENDED = "stage_extended"
    STAGE_PASSED = "stage_passed"
    # every gate passed after the stage's min_dwell and min_requests: it ended before its dwell
    STAGE_PASSED_EARLY = "stage_passed_early"
    WAITING_APPROVAL = "waiting_approval"
    HELD = "held"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    GATE_FAILED = "gate_failed"
    ABORT_REQUESTED = "abort_requested"
    HOOK_ROLLBACK = "hook_rollback"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    REVERTED = "reverted"  # a promotion undone by `gray rollback --to previous`
    RETRIED = "retried"  # after its end: `gray rollout retry` started a new rollout of it
    # hooks and commands
    HOOK_PASSED = "hook_passed"
    HOOK_FAILED = "hook_failed"
    APPROVED = "approved"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    PROMOTE_OVERRIDE = "promote_override"
    COMMAND_IGNORED = "command_ignored"
    # losing the endpoint, the metrics source or the registry's agreement
    SUPERSEDED = "superseded"
    ENDPOINT_LOST = "endpoint_lost"
    METRICS_ERROR = "metrics_error"
    METRICS_LOST = "metrics_lost"
    ALIAS_MOVED = "alias_moved"
    ALIASES_RESTORED = "aliases_restored"
    # a fleet replica that lost the route (restarted with an older one, or empty) rewritten
    ROUTE_REPAIRED = "route_repaired"


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    event: EventKind
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
            event=_event_kind(_typed(record, "event", str)),
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


def _event_kind(value: str) -> EventKind:
    try:
        return EventKind(value)
    except ValueError:
        known = ", ".join(sorted(EventKind))
        raise ValueError(f"unknown event {value!r} (known: {known})") from None


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
