"""The operator's rollback (`gray rollback`, `gray rollout abort`): the write, then the record.

The write comes first and needs nothing heavy: the rollout's state from the
local journal, the endpoint's address, one fenced HTTP write. Everything else
(the journal's terminal event, MLflow, registry tags, `--to previous`) follows
with users already on the baseline. Repeated or concurrent rollbacks of one
rollout are cheap and leave one terminal event (`Journal.append_terminal`).
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gray.controller.errors import (
    ConfigError,
    GrayError,
    JournalError,
    RolloutAlreadyPromotedError,
)
from gray.controller.journal import Event, EventKind, Journal, LocalJournal, actor
from gray.controller.routers.base import FleetRouter, Router
from gray.controller.state import Phase, RolloutState
from gray.controller.types import Applied, Lease, RouteSpec

if TYPE_CHECKING:
    from gray.controller.plan.models import Plan
    from gray.controller.registry import Registry
    from gray.controller.routers.gateway_fleet import ReplicaOutcome

ENDPOINT_FILE = "endpoint.json"


@dataclass(frozen=True)
class Endpoint:
    """Where a rollout's serving endpoint is, kept beside its journal (never the token)."""

    type: str
    url: str  # the first replica's, for readers that know only one address
    timeout: float
    urls: tuple[str, ...] = ()  # every replica of a gateway fleet

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.urls or (self.url,)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "url": self.url, "timeout": self.timeout}
        if len(self.addresses) > 1:
            data["urls"] = list(self.addresses)
        return data


def save_endpoint(local: LocalJournal, rollout_id: str, endpoint: Endpoint) -> None:
    """Written at the start of a rollout so that `gray rollback` can reach the endpoint
    without parsing the plan (which costs more than the write itself)."""
    folder = local.root / rollout_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ENDPOINT_FILE).write_text(json.dumps(endpoint.to_dict()), encoding="utf-8")


def saved_endpoint(local: LocalJournal, rollout_id: str) -> Endpoint | None:
    try:
        data = json.loads((local.root / rollout_id / ENDPOINT_FILE).read_text(encoding="utf-8"))
        urls = tuple(str(url) for url in data.get("urls") or ())
        return Endpoint(str(data["type"]), str(data["url"]), float(data["timeout"]), urls)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_local_rollout(local: LocalJournal, model_or_id: str) -> RolloutState | None:
    """A rollout by id, else the model's newest active one, else its newest of all, from
    the local journal. Only folders named after the model are read (ids start with it)."""
    record = local.load(model_or_id)
    if record is not None:
        return record.state
    if not local.root.is_dir():
        return None
    states = []
    for folder in local.root.glob(f"{glob.escape(model_or_id)}-*"):
        found = local.load(folder.name)
        if found is not None and found.state.model == model_or_id:
            states.append(found.state)
    return newest_rollout(states)


def newest_rollout(states: Iterable[RolloutState]) -> RolloutState | None:
    """The newest active one of `states`, else the newest of all (None: no states)."""
    newest_first = sorted(states, key=lambda s: s.started_at, reverse=True)
    active = [s for s in newest_first if not s.phase.terminal]
    return (active or newest_first or [None])[0]


def check_not_promoted(state: RolloutState | None, route: Applied | None) -> None:
    """Refuse a plain rollback of a promoted rollout: it has no candidate share left to
    take back, and reporting "baseline answers 100 %" would be false."""
    if state is None:
        return
    serves_candidate = (
        route is not None
        and route.route.baseline == state.candidate
        and state.candidate != state.baseline
    )
    if state.phase is Phase.PROMOTED or serves_candidate:
        raise RolloutAlreadyPromotedError(
            f"rollout {state.rollout_id} promoted v{state.candidate}: the endpoint serves it to "
            "everyone and there is no candidate share to take back; nothing was changed. To go "
            f"back to the previous version run `gray rollback {state.model} --to previous`"
        )


def rollback_endpoint(
    router: Router, state: RolloutState | None, *, to_previous: bool = False
) -> tuple[Applied, float]:
    """The one write that matters: baseline 100 %, under a lease newer than any in force.

    A promoted rollout is refused before anything is written, unless `to_previous`
    (which moves the alias back and then the endpoint, in `record_rollback`)."""
    started = time.perf_counter()
    before = router.read()
    if not to_previous:
        check_not_promoted(state, before)
    current = before.lease
    writer = state.rollout_id if state else f"operator:{actor()}"
    applied = router.rollback(Lease(writer, current.epoch if current else 0))
    if not to_previous:
        # The promotion's route write may have landed between the read and the rollback:
        # then the rollback changed no traffic, and must not be reported (or journaled) as one.
        check_not_promoted(state, applied)
    return applied, time.perf_counter() - started


def replica_outcomes(router: Router) -> tuple[ReplicaOutcome, ...]:
    """What each replica of a gateway fleet answered to the last rollback (none: one
    endpoint, whose answer is the rollback's own)."""
    return router.outcomes if isinstance(router, FleetRouter) else ()


@dataclass(frozen=True)
class Recorded:
    """What the bookkeeping after the write did."""

    applied: Applied
    warnings: tuple[str, ...]
    moves: tuple[dict[str, Any], ...]
    event: Event | None  # the terminal event this command wrote
    ended_before: RolloutState | None  # the rollout had ended already (by another rollback)


@dataclass(frozen=True)
class FirstWrite:
    """A rollback written and journaled (or refused) by `gray rollback`'s fast path before
    the command line was even parsed, for the full command to report."""

    target: str
    state: RolloutState
    recorded: Recorded | None
    seconds: float
    refused: GrayError | None = None
    kind: str = "rolled_back"  # or "aborted" (`gray rollout abort`)
    replicas: tuple[ReplicaOutcome, ...] = ()  # a gateway fleet's answers, one per replica


def record_rollback(
    applied: Applied,
    *,
    router: Router | None,
    journal: Journal | None,
    registry: Registry | None,
    state: RolloutState | None,
    plan: Plan | None,
    reason: str,
    to_previous: bool,
    kind: EventKind = EventKind.ROLLED_BACK,
) -> Recorded:
    """Bookkeeping after the endpoint write: journal, registry tag, and `--to previous`.

    Failures here are warnings: traffic is already back on the baseline. With no
    registry (the fast path) the tag is left to `gray rollout sync`. `kind` is the event
    that ends the rollout: ROLLED_BACK (`gray rollback`) or ABORTED (`gray rollout abort`)."""
    kind = EventKind(kind)  # the command line names it by its string
    who = actor()
    warnings: list[str] = []
    verb = "aborted" if kind is EventKind.ABORTED else "rolled back"
    text = f"{verb} by {who}" + (f": {reason}" if reason else "")
    event: Event | None = None
    # A rollout found already ended (a repeated or racing rollback) is reported as such.
    ended: RolloutState | None = state if state is not None and state.phase.terminal else None
    if state is not None and journal is not None and not state.phase.terminal:
        final = state.with_(
            phase=Phase.ABORTED if kind is EventKind.ABORTED else Phase.ROLLED_BACK,
            reason=f"{text}; baseline v{state.baseline} answers 100 %",
            ended_at=time.time(),
            updated_at=time.time(),
            epoch=applied.lease.epoch if applied.lease else state.epoch,
        )
        try:
            data = {"route": applied.to_dict(), "operator": who}
            written, new = journal.append_terminal(final, kind, final.reason, data)
        except JournalError as exc:
            warnings.append(
                f"traffic is back on the baseline, but the journal write failed: {exc.message}"
            )
        else:
            if new:
                event = written
            else:
                ended = RolloutState.from_dict(written.state)
    if registry is not None and event is not None and state is not None:
        try:
            registry.mark_rolled_back(state.model, state.candidate, state.rollout_id)
        except GrayError as exc:  # a missing sqlite file is a ConfigError: still a warning
            warnings.append(f"registry tag not written: {exc.message}")
    moves: list[dict[str, Any]] = []
    if to_previous:
        if registry is None or router is None or (plan is None and state is None):
            raise ConfigError("--to previous needs the registry and the model; pass --registry-uri")
        writer = applied.lease.rollout_id if applied.lease else f"operator:{who}"
        applied = _restore_previous(router, registry, plan, state, writer, text, moves)
        if state is not None and journal is not None and state.phase is Phase.PROMOTED:
            event = _journal_revert(journal, state, applied, moves, text, warnings)
    return Recorded(applied, tuple(warnings), tuple(moves), event, ended)


def announce_end(journal: Journal, state: RolloutState, plan: Plan) -> list[str]:
    """Tell the plan's webhooks (`notify`) and its `on_rollback` hook that an operator's
    rollback or abort ended the rollout; the hook's answer is journaled. Returns the
    failures, one line each.

    A controller that finds an operator's end adopts it without acting on its own end,
    and with no controller running there is nobody else to tell: `gray rollback` runs
    this in its detached `rollout sync`, after the write and off its path.
    """
    from gray.controller import hooks, loop
    from gray.controller.notify import Notifier

    event = "abort" if state.phase is Phase.ABORTED else "rollback"
    notifier = Notifier(plan.notify)
    notifier.send(event, state.reason, plan, state)
    hook_failures: list[str] = []
    if plan.hooks.on_rollback is not None:
        call = loop.CallHook("on_rollback")
        body = hooks.payload(plan, state, call.hook, None)
        answer = hooks.HookCaller(plan.hooks).call(call.hook, body)
        seen = loop.HookAnswered(time.time(), call, answer.ok, answer.reason, answer.status)
        entry = loop.hook_record(seen)
        journal.append(state, entry.event, entry.reason, entry.data)
        if not answer.ok:
            hook_failures.append(answer.reason)
    # Sent meanwhile, or given a bounded wait.
    return notifier.close() + hook_failures


def _journal_revert(
    journal: Journal,
    state: RolloutState,
    applied: Applied,
    moves: list[dict[str, Any]],
    text: str,
    warnings: list[str],
) -> Event | None:
    """A promotion undone by `--to previous` is part of the rollout's story: status and
    list show it as reverted."""
    moved = ", ".join(f"@{m['alias']} → v{m['to_version']}" for m in moves) or "no alias moved"
    reason = f"reverted: {text}; {moved}; v{applied.route.baseline} answers 100 %"
    now = time.time()
    final = state.with_(phase=Phase.REVERTED, reason=reason, ended_at=now, updated_at=now)
    try:
        return journal.append(
            final, EventKind.REVERTED, reason, {"route": applied.to_dict(), "moves": moves}
        )
    except JournalError as exc:
        warnings.append(f"the previous version serves, but the journal write failed: {exc.message}")
        return None


def _restore_previous(
    router: Router,
    registry: Registry,
    plan: Plan | None,
    state: RolloutState | None,
    writer: str,
    text: str,
    moves: list[dict[str, Any]],
) -> Applied:
    """After a promotion: move the alias back and make the endpoint serve that version."""
    from gray.controller.plan.models import PromoteSpec

    promote = plan.promote if plan and plan.promote else PromoteSpec()
    model = state.model if state else (plan.model.name if plan else "")
    rollout_id = state.rollout_id if state else None
    done = registry.restore_previous(model, promote, rollout_id=rollout_id, reason=text)
    moves.extend(m.to_dict() for m in done)
    target = next((m.to_version for m in done if m.alias == promote.alias), None)
    if target is None:
        return router.read()
    router.ensure_loaded(target)
    current = router.read().lease
    lease = Lease(writer, (current.epoch if current else 0) + 1)
    return router.apply(RouteSpec(baseline=target), lease)
