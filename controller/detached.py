"""Starting a gray command detached from this one: a watcher of held traffic, a sync of
the journal to MLflow. The command that starts it returns at once; the detached one
outlives it, in its own session, its output appended to a log beside the journal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gray.controller.errors import RolloutError
from gray.controller.journal import LocalJournal

CONTROLLER_START_SECONDS = 120.0  # a detached controller's preflight loads both versions


@dataclass(frozen=True)
class Detached:
    pid: int
    log: Path


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


def watch_held(rollout_id: str, registry_uri: str | None) -> Detached:
    """`gray rollout resume ID --watch-held` in the background: the held traffic stays
    judged, and a FAIL still rolls back, until a resume (which fences it) or an abort.
    Raises OSError when it cannot be started."""
    log = LocalJournal().root / rollout_id / "watcher.log"
    args = ["rollout", "resume", rollout_id, "--watch-held", "--output", "json"]
    if registry_uri:
        args += ["--registry-uri", registry_uri]
    return Detached(start_in_background(args, log).pid, log)


def start_controller(
    plan_path: Path,
    rollout_id: str,
    *,
    until_stage: str | None,
    registry_uri: str | None,
    hold_traffic: bool,
    retry_of: str | None = None,
) -> Detached:
    """`gray rollout start PLAN` in a new session; returns once its rollout is journaled,
    raises RolloutError with its log when it exits before (a refused preflight)."""
    log_dir = LocalJournal().root / rollout_id
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "controller.log"
    args = ["rollout", "start", str(plan_path), "--rollout-id", rollout_id, "--output", "json"]
    if until_stage:
        args += ["--until-stage", until_stage]
    if registry_uri:
        args += ["--registry-uri", registry_uri]
    if hold_traffic:
        args.append("--hold-traffic")
    if retry_of:
        args += ["--retry-of", retry_of]
    process = start_in_background(args, log)
    deadline = time.time() + CONTROLLER_START_SECONDS
    while time.time() < deadline:
        if LocalJournal().load(rollout_id) is not None:
            break
        if process.poll() is not None:
            text = log.read_text(errors="replace")
            raise RolloutError(
                f"the controller exited with {process.returncode} before starting:\n{text}"
            )
        time.sleep(0.2)
    return Detached(process.pid, log)
