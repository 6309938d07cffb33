"""The judge's working set, kept beside the events instead of inside each of them.

A rollout's state holds the gates' working set (`judge`, kilobytes per gate), their
latest verdict (`last_verdict`, which a look's data already carries) and the results
of the stages passed so far (`history`, a paragraph each). Written into every event,
they made an eight-hour rollout's journal tens of megabytes. The
local journal therefore writes each event's state without them ("numbers only") and
keeps the full state of its newest events in two files beside `events.jsonl`, as the
MLflow run keeps `state.json` and `final.json`:

- `state.json`: the full state of the newest event and of the one before it. It is
  replaced atomically *before* the event is appended, so a crash between the two
  leaves the newest event's full state as the "one before" the state.json names.
- `final.json`: the full state of the first event that ended the rollout, written
  once, so a stale controller's later events cannot take it away from `status`.

Readers put the full state back into the events these files name (matched by
sequence number and time). Journals written before these files existed hold the full
state in every event and need nothing put back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gray.controller.journal.events import Event, check_state

LATEST_FILE = "state.json"
FINAL_FILE = "final.json"
# The state fields that stay out of each event line, in the files above instead.
KEPT_APART = ("judge", "last_verdict", "history")


def line_state(state: dict[str, Any]) -> dict[str, Any]:
    """An event's state as its line in events.jsonl holds it: without the judge's working set."""
    return {key: value for key, value in state.items() if key not in KEPT_APART}


def keep_full_state(folder: Path, event: Event, *, terminal: bool) -> None:
    """Keep `event`'s full state beside the events, before the event itself is appended.
    The caller holds the events file's lock, so writers take turns."""
    latest = folder / LATEST_FILE
    record: dict[str, Any] = _entry(event)
    previous = _read_entry(latest)
    if previous is not None:
        record["previous"] = {key: previous[key] for key in ("seq", "at", "state")}
    _replace_atomically(latest, record)
    if terminal and not (folder / FINAL_FILE).exists():
        _replace_atomically(folder / FINAL_FILE, _entry(event))


def with_full_states(
    folder: Path, events: list[Event], on_warning: Callable[[str], None] | None
) -> list[Event]:
    """`events` with the full state put back into each event the kept files name."""
    full: dict[tuple[int, float], dict[str, Any]] = {}
    for name in (LATEST_FILE, FINAL_FILE):
        path = folder / name
        entry = _read_entry(path)
        if entry is None:
            if path.exists() and on_warning is not None:
                on_warning(f"{path}: skipped a damaged journal state file")
            continue
        for kept in (entry, entry.get("previous")):
            if isinstance(kept, dict) and _valid(kept):
                full[(kept["seq"], float(kept["at"]))] = kept["state"]
    if not full:
        return events
    return [
        replace(event, state=full[(event.seq, event.at)])
        if (event.seq, event.at) in full
        else event
        for event in events
    ]


def _entry(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "at": event.at, "state": event.state}


def _read_entry(path: Path) -> dict[str, Any] | None:
    """The kept entry in `path`; None when there is none or it is damaged."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and _valid(entry) else None


def _valid(entry: dict[str, Any]) -> bool:
    seq, at, state = entry.get("seq"), entry.get("at"), entry.get("state")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(at, int | float):
        return False
    if not isinstance(state, dict):
        return False
    try:
        check_state(state)
    except ValueError:
        return False
    return True


def _replace_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` so that a reader sees the old file or the new one, never
    a part; fsynced with its folder, so the new one outlives a power cut."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
