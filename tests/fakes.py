"""In-memory stand-ins for driving the loop tick by tick: clock, router, metrics, registry,
and the shared (MLflow) journal.

They keep the real contracts: the router fences stale leases exactly like the
gateway (409 -> LeaseConflictError), and the metrics source produces
cumulative counters from simulated traffic that follows the route in force.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from gray.controller.errors import AliasConflictError, LeaseConflictError, MetricsError, RouterError
from gray.controller.journal import Command, Event, RolloutRecord, current_state
from gray.controller.state import RolloutState
from gray.controller.types import (
    Applied,
    Lease,
    Pair,
    RouteSpec,
    ShadowCounters,
    Snapshot,
    VersionCounters,
)


def rollout_state(rollout_id: str, **changes: object) -> RolloutState:
    """A fresh rollout of the loop-test plan (tests/loop/conftest.py): v1 baseline,
    v2 candidate, epoch 1."""
    state = RolloutState(
        rollout_id=rollout_id,
        plan_name="loop-test",
        model="fraud",
        baseline="1",
        candidate="2",
        baseline_ref="@champion",
        candidate_ref="@challenger",
        epoch=1,
        started_at=time.time(),
        updated_at=time.time(),
    )
    return state.with_(**changes)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


class FakeRouter:
    """A serving endpoint in memory, with the gateway's lease rules."""

    def __init__(self, baseline: str) -> None:
        self.applied = Applied(RouteSpec(baseline=baseline), None)
        self.writes: list[Applied] = []
        self.fail_next: int = 0
        self.loaded: set[str] = {baseline}
        self.renewals: list[tuple[Lease, float]] = []
        self.ttls: list[float | None] = []  # the ttl of every write
        # The sha256 of the preprocessor the endpoint applies to each version it loads.
        self.preprocessors: dict[str, str | None] = {}
        self.unreachable = False  # every call fails as a refused connection does

    def _check(self, lease: Lease) -> None:
        current = self.applied.lease
        if current is None:
            return
        if lease.epoch < current.epoch or (
            lease.epoch == current.epoch and lease.rollout_id != current.rollout_id
        ):
            raise LeaseConflictError(f"lease {lease} is older than {current}")

    def apply(self, route: RouteSpec, lease: Lease, ttl: float | None = None) -> Applied:
        self.ttls.append(ttl)
        if self.fail_next:
            self.fail_next -= 1
            raise RouterError("connection refused")
        self._check(lease)
        self.applied = Applied(route, lease)
        self.writes.append(self.applied)
        return self.applied

    def read(self) -> Applied:
        if self.unreachable:
            raise RouterError("connection refused")
        return self.applied

    def renew(self, lease: Lease, ttl: float) -> Applied:
        if self.applied.lease != lease:
            raise LeaseConflictError(f"lease {lease} is not the one in force")
        self.renewals.append((lease, ttl))
        return self.applied

    def rollback(self, lease: Lease | None) -> Applied:
        if self.fail_next:
            self.fail_next -= 1
            raise RouterError("connection refused")
        current = self.applied.lease
        epoch = max(current.epoch if current else 0, lease.epoch if lease else 0) + 1
        rollout_id = lease.rollout_id if lease else "operator"
        self.applied = Applied(self.applied.route.rolled_back(), Lease(rollout_id, epoch))
        self.writes.append(self.applied)
        return self.applied

    def ensure_loaded(self, version: str) -> str | None:
        self.loaded.add(version)
        return self.preprocessors.get(version)


@dataclass
class VersionBehaviour:
    error_rate: float = 0.01
    slow_rate: float = 0.01  # share of requests over every SLO edge
    accuracy: float = 0.9


@dataclass
class FakeMetrics:
    """Traffic at `rps`, split by the router's route in force, with expected (not random) counts."""

    clock: FakeClock
    router: FakeRouter
    rps: float = 100.0
    behaviour: dict[str, VersionBehaviour] = field(default_factory=dict)
    slo_edges: tuple[float, ...] = (0.25,)
    broken: bool = False
    silent_candidate: bool = False  # candidate gets no traffic (an audience nobody matches)
    _last: float | None = None
    _totals: dict[str, dict[str, float]] = field(default_factory=dict)
    _shadow: dict[str, float] = field(default_factory=dict)

    def _advance(self) -> None:
        now = self.clock.now()
        if self._last is None:
            self._last = now
            return
        elapsed, self._last = now - self._last, now
        route = self.router.applied.route
        weight = 0.0 if self.silent_candidate else route.weight
        served = {route.baseline: 1.0 - weight}
        if route.candidate:
            served[route.candidate] = served.get(route.candidate, 0.0) + weight
        for version, share in served.items():
            self._add(self._totals, version, self.rps * elapsed * share)
        if route.candidate and route.mirror and not self.silent_candidate:
            mirrored = self.rps * elapsed * route.mirror * (1.0 - weight)
            self._shadow["requests"] = self._shadow.get("requests", 0.0) + mirrored

    def _add(self, totals: dict[str, dict[str, float]], version: str, requests: float) -> None:
        b = self.behaviour.get(version, VersionBehaviour())
        t = totals.setdefault(
            version, {"requests": 0.0, "errors": 0.0, "slow": 0.0, "correct": 0.0}
        )
        t["requests"] += requests
        t["errors"] += requests * b.error_rate
        t["slow"] += requests * b.slow_rate
        t["correct"] += requests * b.accuracy

    def _counters(self, version: str) -> VersionCounters:
        t = self._totals.get(version)
        if not t:
            return VersionCounters(slow=tuple((e, 0) for e in self.slo_edges))
        requests = int(t["requests"])
        return VersionCounters(
            requests=requests,
            errors=int(t["errors"]),
            slow=tuple((e, int(t["slow"])) for e in self.slo_edges),
            labelled=requests,
            correct=int(t["correct"]),
        )

    def snapshot(self, versions: Pair) -> Snapshot:
        if self.broken:
            raise MetricsError("metrics endpoint unreachable")
        self._advance()
        mirrored = int(self._shadow.get("requests", 0.0))
        cand = self.behaviour.get(versions.candidate, VersionBehaviour())
        base = self.behaviour.get(versions.baseline, VersionBehaviour())
        shadow = ShadowCounters(
            pairs=mirrored,
            disagreements=int(mirrored * 0.01),
            baseline=VersionCounters(requests=mirrored, errors=int(mirrored * base.error_rate)),
            candidate=VersionCounters(requests=mirrored, errors=int(mirrored * cand.error_rate)),
        )
        return Snapshot(
            taken_at=self.clock.now(),
            baseline=self._counters(versions.baseline),
            candidate=self._counters(versions.candidate),
            shadow=shadow,
        )


@dataclass
class FakeRegistry:
    aliases: dict[str, str] = field(default_factory=lambda: {"champion": "1"})
    rolled_back: list[tuple[str, str, str]] = field(default_factory=list)

    def promote(
        self,
        name: str,
        candidate_version: str,
        promote: Any,
        rollout_id: str,
        *,
        expect_current: str | None = None,
    ) -> list[dict[str, Any]]:
        previous = self.aliases.get(promote.alias)
        if expect_current is not None and previous != expect_current:
            raise AliasConflictError(f"@{promote.alias} points at {previous}, not {expect_current}")
        self.aliases[promote.alias] = candidate_version
        moves = [
            {"alias": promote.alias, "from_version": previous, "to_version": candidate_version}
        ]
        if promote.keep_previous_as and previous:
            self.aliases[promote.keep_previous_as] = previous
            moves.append(
                {"alias": promote.keep_previous_as, "from_version": None, "to_version": previous}
            )
        return moves

    def drift_from(self, model: Any, baseline: str, candidate: str) -> list[str]:
        target = self.aliases.get(model.candidate.removeprefix("@"))
        if model.candidate.startswith("@") and target is not None and target != candidate:
            return [f"alias {model.candidate} moved from version {candidate} to {target}"]
        return []

    def alias_points_at(self, name: str, alias: str, version: str) -> bool:
        return self.aliases.get(alias) == version

    def mark_rolled_back(self, name: str, version: str, rollout_id: str) -> None:
        self.rolled_back.append((name, version, rollout_id))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        expected_from: str | None,
        rollout_id: str | None,
        reason: str,
    ) -> dict[str, Any]:
        current = self.aliases.get(alias)
        if current != expected_from:
            raise AliasConflictError(f"@{alias} points at {current}, not {expected_from}")
        self.aliases[alias] = version
        return {"alias": alias, "from_version": current, "to_version": version}


class RemoteDown(ConnectionError):
    """What a FakeRemoteJournal raises for a method it was told to fail."""


@dataclass
class _RemoteRun:
    plan_text: str
    events: list[Event] = field(default_factory=list)
    latest: dict[str, Any] | None = None  # state.json
    final: dict[str, Any] | None = None  # final.json
    commands: list[Command] = field(default_factory=list)


@dataclass
class FakeRemoteJournal:
    """The shared journal in memory, kept the way the MLflow run keeps it: per-event copies
    without the judge's working set, the latest full state apart, the end state apart.
    `failing` names the methods that raise RemoteDown, as an unreachable MLflow does."""

    runs: dict[str, _RemoteRun] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        if method in self.failing:
            raise RemoteDown(f"{method}: MLflow unreachable")

    def create(self, state: RolloutState, plan_text: str) -> None:
        self._call("create")
        self.runs[state.rollout_id] = _RemoteRun(plan_text, latest=state.to_dict())

    def append(self, event: Event) -> None:
        self._call("append")
        run = self.runs[str(event.state["rollout_id"])]  # MLflow: no run, no append
        run.events.append(replace(event, state={**event.state, "judge": None}))
        run.latest = event.state
        if RolloutState.from_dict(event.state).phase.terminal:
            run.final = event.state

    def load(self, rollout_id: str) -> RolloutRecord | None:
        self._call("load")
        run = self.runs.get(rollout_id)
        if run is None:
            return None
        full = run.final or run.latest
        state = RolloutState.from_dict(full) if full else current_state(run.events)
        return RolloutRecord(state, tuple(run.events), run.plan_text)

    def list_states(self, model: str | None) -> list[RolloutState]:
        self._call("list_states")
        states = [RolloutState.from_dict(run.latest) for run in self.runs.values() if run.latest]
        # The run's summary tag leaves out the judge, the verdict and the stage results.
        summaries = [s.with_(judge=None, last_verdict=None, history=()) for s in states]
        return [s for s in summaries if model is None or s.model == model]

    def post_command(self, rollout_id: str, command: Command) -> None:
        self._call("post_command")
        self.runs[rollout_id].commands.append(command)

    def commands(self, rollout_id: str) -> list[Command]:
        self._call("commands")
        run = self.runs.get(rollout_id)
        return list(run.commands) if run else []
