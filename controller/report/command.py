"""`gray rollout report ID`: the report page of a rollout, ended or running, in a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gray.controller import lookup
from gray.controller.errors import ReportWriteError
from gray.controller.extras import require_extra
from gray.controller.report.artifact import mirrored_pairs
from gray.controller.report.samples import DisagreeingPairs
from gray.controller.state import RolloutState

Warn = Callable[[str], None]


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    size: int  # bytes
    state: RolloutState
    pairs_note: str  # where the disagreeing pairs came from, or why there are none


def default_path(rollout_id: str) -> Path:
    return Path(f"{rollout_id}-report.html")


def write_rollout_report(
    rollout_id: str,
    path: Path | None,
    registry_uri: str | None,
    on_warning: Warn,
    *,
    shared: bool = False,
    read_pairs: Callable[[str], DisagreeingPairs] | None = None,
) -> WrittenReport:
    """Draw the rollout's report from its journal (a snapshot while it runs) into `path`;
    disagreeing pairs from `read_pairs(candidate)` (a prediction log on disk), else from
    the plan's gateway when the plan mirrors traffic."""
    require_extra("report", "gray rollout report")
    from gray.controller.report import build_report

    _, record, plan = lookup.rollout_to_read(rollout_id, registry_uri, shared, on_warning)
    candidate = record.state.candidate
    pairs = read_pairs(candidate) if read_pairs else mirrored_pairs(plan, candidate)
    html = build_report(record, plan, pairs)
    target = path or default_path(rollout_id)
    data = html.encode("utf-8")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.replace(target)  # a reader never sees half a page
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ReportWriteError(
            f"cannot write the report to {target}: {exc.strerror or exc}"
        ) from None
    return WrittenReport(target, len(data), record.state, pairs.note if pairs else "")
