"""Alias moves: compare-and-set, the rollout's promotion and its undoing, and gray's record
of every move, kept in MLflow as numbered registered-model tags.

MLflow has no compare-and-swap for aliases: `Aliases.set_alias` re-reads the alias right
before the write, which narrows the race to the two calls. MLflow keeps no alias history
either, so every move gray makes is appended as a tag `gray.alias_move.000001`,
`gray.alias_move.000002`, ... whose value is the move as JSON. Living in the registry
itself, the history is visible from any machine that reaches it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gray.controller.errors import (
    AliasConflictError,
    AliasNotFoundError,
    ConfigError,
    RegistryError,
)
from gray.controller.registry.client import RegistryClient
from gray.controller.registry.versions import (
    TAG_PROMOTED_AT,
    TAG_REPLACED_AT,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLOUT_ID,
)

if TYPE_CHECKING:
    from gray.controller.plan.models import PromoteSpec

__all__ = ["AliasMove", "Aliases", "current_actor", "decode_history", "now_iso"]

TAG_PREFIX = "gray.alias_move."
SEQUENCE_DIGITS = 6
# MLflow caps tag values (5000 characters in its SQL stores); keep well under it.
MAX_REASON_CHARS = 1000
ACTOR_ENV = "GRAY_ACTOR"
# How often `_record` takes the next sequence number when other writers keep taking its own.
RECORD_ATTEMPTS = 5


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


class Aliases:
    """Moves aliases with compare-and-set, records each move, and tags the versions a
    rollout promoted, replaced or rolled back."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    def target(self, name: str, alias: str) -> str | None:
        """The version `alias` points at now, or None."""
        target = (self._client.registered_model(name).aliases or {}).get(alias)
        return None if target is None else str(target)

    def points_at(self, name: str, alias: str, version: str) -> bool:
        return self.target(name, alias) == str(version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        expected_from: str | None,
        rollout_id: str | None,
        reason: str,
    ) -> AliasMove:
        """Point `alias` at `version` if it still points at `expected_from`; record the move."""
        version = str(version)
        current = self.target(name, alias)
        if current != expected_from:
            raise AliasConflictError(
                f"alias @{alias} of {name} points at {_describe(current)}, not "
                f"{_describe(expected_from)} as expected: someone moved it. Nothing was changed; "
                f"check `gray registry show {name}` and retry"
            )
        self._client.model_version(name, version)
        self._client.call(
            f"set alias @{alias} of {name} to version {version}",
            lambda: self._client.mlflow.set_registered_model_alias(name, alias, version),
        )
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=current,
            to_version=version,
            at=now_iso(),
            actor=current_actor(),
            rollout_id=rollout_id,
            reason=reason,
        )
        self._record(move)
        return move

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: PromoteSpec,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[AliasMove]:
        """Move `promote.alias` to the candidate, keeping the replaced version as
        `promote.keep_previous_as`. With `expect_current`, refuse unless the alias still
        points at that version (the baseline the rollout pinned)."""
        candidate_version = str(candidate_version)
        current = self.target(name, promote.alias)
        if expect_current is not None and current != str(expect_current):
            raise AliasConflictError(
                f"alias @{promote.alias} of {name} points at {_describe(current)}, not at the "
                f"pinned baseline version {expect_current}: it moved during the rollout. Nothing "
                "was changed; promote by hand after checking `gray registry show`"
            )
        stamp = now_iso()
        self._client.model_version(name, candidate_version)
        moves: list[AliasMove] = []
        if current != candidate_version:
            kept = self.target(name, promote.keep_previous_as) if promote.keep_previous_as else None
            if promote.keep_previous_as and current is not None and kept != current:
                # Written first: if the next step fails, the way back is already recorded.
                moves.append(
                    self.set_alias(
                        name,
                        promote.keep_previous_as,
                        current,
                        expected_from=kept,
                        rollout_id=rollout_id,
                        reason=f"rollout {rollout_id}: keep the replaced @{promote.alias}",
                    )
                )
            moves.append(
                self.set_alias(
                    name,
                    promote.alias,
                    candidate_version,
                    expected_from=current,
                    rollout_id=rollout_id,
                    reason=f"rollout {rollout_id} promoted version {candidate_version}",
                )
            )
            if current is not None:
                self._client.set_version_tags(
                    name, current, {TAG_ROLLOUT_ID: rollout_id, TAG_REPLACED_AT: stamp}
                )
        self._client.set_version_tags(
            name, candidate_version, {TAG_ROLLOUT_ID: rollout_id, TAG_PROMOTED_AT: stamp}
        )
        return moves

    def restore_previous(
        self, name: str, promote: PromoteSpec, *, rollout_id: str | None, reason: str
    ) -> list[AliasMove]:
        """Point `promote.alias` back at `promote.keep_previous_as` (`gray rollback --to
        previous`). Already there: nothing to do, no error."""
        keep = promote.keep_previous_as
        if not keep:
            raise ConfigError(
                f"promote.keep_previous_as is empty, so no previous version of {name} was kept; "
                "move the alias to a version number instead"
            )
        registered = self._client.registered_model(name)
        aliases = {a: str(v) for a, v in (registered.aliases or {}).items()}
        previous = aliases.get(keep)
        if previous is None:
            raise AliasNotFoundError(
                f"registered model {name!r} has no alias @{keep}, so there is no previous "
                f"version to restore @{promote.alias} to; nothing was changed"
            )
        current = aliases.get(promote.alias)
        if current == previous:
            return []
        move = self.set_alias(
            name,
            promote.alias,
            previous,
            expected_from=current,
            rollout_id=rollout_id,
            reason=reason,
        )
        if current is not None:
            tags = {TAG_ROLLED_BACK_AT: move.at}
            if rollout_id:
                tags[TAG_ROLLOUT_ID] = rollout_id
            self._client.set_version_tags(name, current, tags)
        return [move]

    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None:
        """Tag a version that a rollout rolled back (traffic returned to the baseline)."""
        self._client.set_version_tags(
            name, str(version), {TAG_ROLLOUT_ID: rollout_id, TAG_ROLLED_BACK_AT: now_iso()}
        )

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move gray recorded for `name`, oldest first."""
        return decode_history(dict(self._client.registered_model(name).tags or {}))

    def _record(self, move: AliasMove) -> None:
        """Append `move` to the history; on a sequence clash with another writer, move on."""
        value = encode(move)
        sequence = next_sequence(self._model_tags(move.model))
        for _ in range(RECORD_ATTEMPTS):
            key = tag_key(sequence)
            self._client.call(
                f"record the move of @{move.alias} on {move.model}",
                lambda key=key: self._client.mlflow.set_registered_model_tag(
                    move.model, key, value
                ),
            )
            if self._model_tags(move.model).get(key) == value:
                return
            sequence = next_sequence(self._model_tags(move.model))
        raise RegistryError(
            f"could not record the move of @{move.alias} on {move.model} in the history: other "
            "writers kept taking the same sequence number"
        )

    def _model_tags(self, name: str) -> dict[str, str]:
        return dict(self._client.registered_model(name).tags or {})


def _describe(version: str | None) -> str:
    return "no version" if version is None else f"version {version}"
