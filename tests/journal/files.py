"""Damaging a rollout's local journal the way a crash or a stray writer does."""

from __future__ import annotations

from pathlib import Path


def events_file(home: Path, rollout_id: str) -> Path:
    return home / "rollouts" / rollout_id / "events.jsonl"


def damage(home: Path, rollout_id: str, raw: bytes) -> int:
    """Append raw bytes to a rollout's events; the 1-based line number they start on."""
    path = events_file(home, rollout_id)
    line = path.read_bytes().count(b"\n") + 1
    with path.open("ab") as file:
        file.write(raw)
    return line
