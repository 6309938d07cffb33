"""Catching the shared (MLflow) journal up with the local one.

`gray rollback` writes its terminal event to the local journal only, so that the
command never waits for MLflow; a detached `gray rollout sync ID` then sends
what MLflow lacks. A controller whose MLflow writes timed out at exit is caught
up the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from gray.controller.errors import RolloutNotFoundError
from gray.controller.journal.events import Event
from gray.controller.journal.merged import Journal
from gray.controller.journal.mlflow_run import RECENT_EVENTS

_EventKey = tuple[int, str, int]


@dataclass(frozen=True)
class SyncResult:
    sent: int
    created_run: bool


def _key(event: Event) -> _EventKey:
    return (event.seq, event.event, int(event.at * 1000))


def sync_to_remote(journal: Journal, rollout_id: str) -> SyncResult:
    """Send the local events of `rollout_id` that the shared journal does not hold, oldest
    first. Raises what the shared journal raises: the caller reports it."""
    local = journal.local.load(rollout_id)
    if local is None:
        raise RolloutNotFoundError(f"no rollout {rollout_id!r} in the local journal")
    remote = journal.remote
    if remote is None:
        return SyncResult(0, False)
    shared = remote.load(rollout_id)
    created = False
    if shared is None:
        from gray.controller.state import RolloutState

        first = RolloutState.from_dict(local.events[0].state)
        remote.create(first, local.plan_text)
        created, have, since = True, set(), float("-inf")
    else:
        have = {_key(e) for e in shared.events}
        # The shared journal reads back only its newest events: older ones count as sent.
        full = len(shared.events) >= RECENT_EVENTS
        since = min(e.at for e in shared.events) if full else float("-inf")
    missing = [e for e in local.events if _key(e) not in have and e.at >= since]
    for event in sorted(missing, key=lambda e: (e.at, e.seq)):
        remote.append(event)
    return SyncResult(len(missing), created)
