"""gray's record of alias moves, kept in MLflow as numbered registered-model tags.

MLflow keeps no alias history, so every move gray makes is appended as a tag
`gray.alias_move.000001`, `gray.alias_move.000002`, ... whose value is the move as JSON.
Living in the registry itself, the history is visible from any machine that reaches it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

TAG_PREFIX = "gray.alias_move."
SEQUENCE_DIGITS = 6
# MLflow caps tag values (5000 characters in its SQL stores); keep well under it.
MAX_REASON_CHARS = 1000
ACTOR_ENV = "GRAY_ACTOR"


@dataclass(frozen=True)
class AliasMove:
    """One alias move: which alias, from which version to which, by whom, when and why."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    at: str
    actor: str
    rollout_id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasMove:
        return cls(
            model=str(data["model"]),
            alias=str(data["alias"]),
            from_version=_optional_str(data.get("from_version")),
            to_version=_optional_str(data.get("to_version")),
            at=str(data["at"]),
            actor=str(data.get("actor", "")),
            rollout_id=_optional_str(data.get("rollout_id")),
            reason=str(data.get("reason", "")),
        )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def now_iso() -> str:
    """The current time in UTC, ISO 8601 to the second with a Z."""
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_actor() -> str:
    """`$GRAY_ACTOR` when set (CI jobs name themselves), else user@host."""
    configured = os.environ.get(ACTOR_ENV)
    if configured:
        return configured
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an anonymous container user
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def tag_key(sequence: int) -> str:
    return f"{TAG_PREFIX}{sequence:0{SEQUENCE_DIGITS}d}"


def sequence_of(key: str) -> int | None:
    """The sequence number of a history tag key, or None for any other tag."""
    if not key.startswith(TAG_PREFIX):
        return None
    digits = key[len(TAG_PREFIX) :]
    return int(digits) if digits.isdigit() else None


def next_sequence(tags: dict[str, str]) -> int:
    numbers = [n for n in (sequence_of(key) for key in tags) if n is not None]
    return max(numbers, default=0) + 1


def encode(move: AliasMove) -> str:
    data = move.to_dict()
    data["reason"] = move.reason[:MAX_REASON_CHARS]
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def decode_history(tags: dict[str, str]) -> list[AliasMove]:
    """Every readable move in `tags`, oldest first.

    An entry that does not parse (edited by hand, or written by a future gray) is skipped
    rather than failing the whole history: the remaining entries are still true.
    """
    entries = sorted(
        (number, value) for key, value in tags.items() if (number := sequence_of(key)) is not None
    )
    moves: list[AliasMove] = []
    for _, value in entries:
        try:
            moves.append(AliasMove.from_dict(json.loads(value)))
        except (ValueError, KeyError, TypeError):
            continue
    return moves
