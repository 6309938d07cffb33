"""Read the prediction log back, newest last, across rotated files."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from gray.controller.errors import GatewayError
from gray.gateway.predlog import LOG_NAME


def log_files(state_dir: Path) -> list[Path]:
    """The log's files oldest first: predictions.jsonl.N ... .1, then predictions.jsonl."""
    directory = state_dir / "predictions"
    rotated = sorted(
        (p for p in directory.glob(f"{LOG_NAME}.*") if p.suffix.lstrip(".").isdigit()),
        key=lambda p: int(p.suffix.lstrip(".")),
        reverse=True,
    )
    current = directory / LOG_NAME
    return [*rotated, *([current] if current.exists() else [])]


def read_samples(
    state_dir: Path,
    *,
    count: int,
    kind: str | None = None,
    version: str | None = None,
    only_disagreements: bool = False,
) -> list[dict[str, Any]]:
    files = log_files(state_dir)
    if not files:
        raise GatewayError(f"no prediction log under {state_dir / 'predictions'}")
    newest: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(count, 0))
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if _wanted(record, kind, version, only_disagreements):
                    newest.append(record)
    return list(newest)


def _wanted(
    record: dict[str, Any], kind: str | None, version: str | None, only_disagreements: bool
) -> bool:
    if kind is not None and record.get("kind") != kind:
        return False
    if only_disagreements and record.get("agree") is not False:
        return False
    if version is None:
        return True
    versions = {record.get("version")}
    for side in ("baseline", "candidate"):
        if isinstance(record.get(side), dict):
            versions.add(record[side].get("version"))
    return version in versions
