"""Finding a rollout and the journal to read it in, for the commands that name one.

The local journal answers first when it can: reading MLflow costs seconds of
start-up (importing its client) before the first byte. The MLflow journal is
opened through the registry the rollout's own plan names, else the one the flags
or the environment name.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from gray.controller.errors import GrayError, ModelNotFoundError, RolloutNotFoundError
from gray.controller.journal import Journal, LocalJournal, RemoteJournal, RolloutRecord
from gray.controller.operator import newest_rollout
from gray.controller.plan.loading import parse_plan
from gray.controller.state import RolloutState

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.registry import Registry

Warn = Callable[[str], None]


def open_registry(plan: Plan | None, cli_uri: str | None) -> Registry:
    from gray.controller.registry import Registry, resolve_registry_uri

    return Registry(resolve_registry_uri(plan.registry.uri if plan else None, cli_uri))


def open_journal(
    registry: Registry | None,
    on_warning: Callable[[str], None] | None = None,
    *,
    background: bool = False,
) -> Journal:
    """The local journal plus the registry's MLflow one. A controller asks for
    `background`: its MLflow writes and command reads then never hold up a decision."""
    remote: RemoteJournal | None = None
    if registry is not None:
        from gray.controller.journal.mlflow_run import MlflowJournal

        remote = MlflowJournal(registry.client)
        if background:
            from gray.controller.journal.background import BackgroundRemote

            remote = BackgroundRemote(remote, on_warning)
    return Journal(LocalJournal(), remote, on_remote_error=on_warning)


def controller_alive(state: RolloutState, interval: float, now: float | None = None) -> bool:
    """A running controller journals a look every interval; silence means none is running."""
    if state.phase.terminal:
        return False
    return (now if now is not None else time.time()) - state.updated_at < 3 * interval + 15


class EnvironForReading(Mapping[str, str]):
    """The environment, with unset variables read as empty: reading a journaled rollout
    must not need the secrets (the gateway token) that only its writes use."""

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, "")

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def rollout_plan(record: RolloutRecord, rollout_id: str, *, reading: bool = False) -> Plan:
    """The plan a rollout was started with; `reading` for commands that only show it."""
    environ = EnvironForReading() if reading else None
    return parse_plan(record.plan_text, f"{rollout_id}/plan.yaml", environ)  # type: ignore[arg-type]


def load_rollout(
    journal: Journal, rollout_id: str, *, reading: bool = False
) -> tuple[RolloutRecord, Plan]:
    record = journal.load(rollout_id)
    return record, rollout_plan(record, rollout_id, reading=reading)


def journal_for(
    rollout_id: str | None,
    registry_uri: str | None,
    on_warning: Warn,
    *,
    background: bool = False,
) -> tuple[Journal, Registry | None]:
    """The journal to read: the registry named by the rollout's local plan, else by flags/env.
    `background` for a controller: its MLflow writes must never hold up a decision."""
    plan = None
    if rollout_id is not None:
        local = LocalJournal().load(rollout_id)
        if local is not None and local.plan_text:
            plan = rollout_plan(local, rollout_id, reading=True)
    registry = open_registry(plan, registry_uri)
    try:
        return open_journal(registry, on_warning, background=background), registry
    except Exception as exc:  # the local journal still answers without MLflow
        on_warning(f"MLflow journal unavailable ({exc}); using the local journal only")
        return Journal(LocalJournal()), None


def rollout_to_read(
    rollout_id: str, registry_uri: str | None, shared: bool, on_warning: Warn
) -> tuple[Journal, RolloutRecord, Plan]:
    """The rollout, its plan, and the journal to follow it in: the local journal when it
    is current for this rollout (it ended, or a controller on this machine is running
    it), else the local and the MLflow journal together."""
    local = LocalJournal().load(rollout_id)
    if local is not None and not shared:
        plan = rollout_plan(local, rollout_id, reading=True)
        if local.state.phase.terminal or controller_alive(local.state, plan.interval):
            return Journal(LocalJournal()), local, plan
    journal, _ = journal_for(rollout_id, registry_uri, on_warning)
    record, plan = load_rollout(journal, rollout_id, reading=True)
    return journal, record, plan


def states_to_list(
    model: str | None, registry_uri: str | None, shared: bool, on_warning: Warn
) -> tuple[list[RolloutState], Journal]:
    """Rollouts from the local journal alone when it has any and `shared` was not asked,
    else from the local and the MLflow journal together; newest first."""
    local = Journal(LocalJournal())
    states = [] if shared else local.list_states(model)
    if states:
        return states, local
    journal, _ = journal_for(None, registry_uri, on_warning)
    return journal.list_states(model), journal


def local_plan(local: LocalJournal, state: RolloutState | None) -> Plan | None:
    """The plan a rollout of the local journal was started with (None: none journaled)."""
    if state is None:
        return None
    record = local.load(state.rollout_id)
    if record is None or not record.plan_text:
        return None
    return rollout_plan(record, state.rollout_id)


def find_rollout(journal: Journal, model_or_id: str) -> tuple[RolloutState | None, Plan | None]:
    """A rollout by id, else the model's newest active one, else its newest of all."""
    try:
        record = journal.load(model_or_id)
    except RolloutNotFoundError:
        record = None
    if record is not None:
        return record.state, rollout_plan(record, model_or_id)
    chosen = newest_rollout(journal.list_states(model_or_id))
    if chosen is None:
        return None, None
    record = journal.load(chosen.rollout_id)
    return record.state, rollout_plan(record, chosen.rollout_id)


def unknown_target(model_or_id: str, journal: Journal, registry_uri: str | None) -> GrayError:
    """Why nothing can be rolled back for `model_or_id`: say whether the model exists,
    and which names the journals know."""
    known = sorted({s.model for s in journal.list_states()})
    close = difflib.get_close_matches(model_or_id, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    what = f"no rollout id or model {model_or_id!r} in the local or MLflow journal"
    try:
        open_registry(None, registry_uri).versions(model_or_id)
    except ModelNotFoundError:
        what = f"registered model {model_or_id!r} does not exist, and no rollout has that id"
    except GrayError:
        pass
    listed = f" (models with rollouts: {', '.join(known)})" if known else ""
    return RolloutNotFoundError(
        f"{what}{listed}{hint}; nothing was changed. To roll back an endpoint that no "
        "rollout names, pass --router-url or set GRAY_GATEWAY_URL"
    )
