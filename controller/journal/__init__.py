"""The rollout journal: every event with the state after it, durable and shareable.

`events` (the records and `EventKind`), `local` (the fsynced JSON-lines file),
`latest` (the full state kept beside its lines), `mlflow_run` (the shared MLflow
run), `merged` (`Journal`, the two together), `background` (MLflow writes off the
decision path) and `sync` (catching MLflow up with the local file).
"""

from gray.controller.journal.events import (
    Command,
    Event,
    EventKind,
    RemoteJournal,
    RolloutRecord,
    actor,
    current_state,
    gray_home,
    new_rollout_id,
    print_warning,
)
from gray.controller.journal.local import LocalJournal
from gray.controller.journal.merged import Journal

__all__ = [
    "Command",
    "Event",
    "EventKind",
    "Journal",
    "LocalJournal",
    "RemoteJournal",
    "RolloutRecord",
    "actor",
    "current_state",
    "gray_home",
    "new_rollout_id",
    "print_warning",
]
