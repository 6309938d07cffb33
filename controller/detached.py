"""Starting a gray command detached from this one: a watcher of held traffic, a sync of
the journal to MLflow. The command that starts it returns at once; the detached one
outlives it, in its own session, its output appended to a log beside the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def start_in_background(arguments: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `gray ARGUMENTS` detached from this process (its own session, no stdin), its
    output appended to `log_path`. Raises OSError when it cannot be started."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gray.cli", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )


def sync_in_background(
    rollout_id: str, log_dir: Path, registry_uri: str | None, *, tag: bool
) -> subprocess.Popen[bytes]:
    """`gray rollout sync ID` (with `--tag-rolled-back`: tell the plan's webhooks and tag the
    candidate) in the background: MLflow learns of an operator's end without the operator
    waiting for it. Raises OSError when it cannot be started."""
    args = ["rollout", "sync", rollout_id]
    if tag:
        args.append("--tag-rolled-back")
    if registry_uri:
        args += ["--registry-uri", registry_uri]
    return start_in_background(args, log_dir / rollout_id / "sync.log")
