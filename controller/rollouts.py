"""Rollout operations behind the CLI: preflight, start, resume, commands, operator rollback.

These functions wire the plan, the registry, the serving endpoint, the metrics
source and the journal together; the decisions themselves live in `loop.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gray.controller import loop
from gray.controller.errors import (
    ConfigError,
    GrayError,
    PreflightError,
    RegistryError,
    RolloutActiveError,
    RolloutError,
    RouterError,
)
from gray.controller.journal import (
    Journal,
    new_rollout_id,
)
from gray.controller.lookup import load_rollout, open_journal, open_registry
from gray.controller.metrics import build_metrics
from gray.controller.metrics.base import MetricsSource
from gray.controller.operator import Endpoint, save_endpoint
from gray.controller.plan.loading import load_plan
from gray.controller.plan.models import Plan
from gray.controller.redact import redact
from gray.controller.registry import NO_PREPROCESSOR
from gray.controller.routers import build_router
from gray.controller.routers.base import Router
from gray.controller.routers.gateway_spec import GatewayRouterSpec
from gray.controller.state import RolloutState
from gray.controller.types import Applied, Pair

if TYPE_CHECKING:
    from gray.controller.registry import ModelVersionInfo, PinnedPair, Registry

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    baseline: str | None = None
    candidate: str | None = None
    route: Applied | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def failure(self) -> PreflightError:
        failed = [c for c in self.checks if not c.ok]
        lines = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return PreflightError(
            f"preflight refused the rollout, nothing was changed. {lines}", self.checks
        )


def build_adapters(plan: Plan) -> tuple[Router, MetricsSource]:
    """The plan's serving endpoint and metrics source, built once per controller."""
    return build_router(plan.router, plan), build_metrics(plan.metrics, plan)


@dataclass(frozen=True)
class Setup:
    """A plan to start and the parts that run it, each opened once."""

    plan: Plan
    plan_text: str  # journaled as written
    until: int | None  # `--until-stage` as a stage index
    registry: Registry
    journal: Journal
    router: Router
    metrics: MetricsSource


def set_up(
    plan_path: Path, registry_uri: str | None, until_stage: str | None, on_warning: Warn
) -> Setup:
    """Read the plan, open its registry and journal (MLflow writes in the background: they
    must never hold up a decision) and build its endpoint and metrics adapters."""
    plan = load_plan(plan_path)
    plan_text = plan_path.read_text(encoding="utf-8")
    until = stage_number(plan, until_stage)
    registry = open_registry(plan, registry_uri)
    journal = open_journal(registry, on_warning, background=True)
    router, metrics = build_adapters(plan)
    return Setup(plan, plan_text, until, registry, journal, router, metrics)


def preflight(
    plan: Plan, registry: Registry, router: Router, metrics: MetricsSource, journal: Journal
) -> PreflightReport:
    """Every check before any traffic moves. Raises PreflightError listing what failed."""
    report = PreflightReport()
    try:
        pinned = registry.pin(plan.model)
    except RegistryError as exc:
        report.add("versions", False, exc.message)
        raise report.failure() from None
    report.baseline, report.candidate = pinned.baseline.version, pinned.candidate.version
    report.add(
        "versions",
        True,
        f"{plan.model.name} baseline {plan.model.baseline} = v{pinned.baseline.version}, "
        f"candidate {plan.model.candidate} = v{pinned.candidate.version}",
    )
    for side, info, ref in (
        ("baseline", pinned.baseline, plan.model.baseline),
        ("candidate", pinned.candidate, plan.model.candidate),
    ):
        report.add(f"{side} preprocessor", *_preprocessor_check(registry, plan, info, ref))
    _refuse_a_second_rollout(plan, journal)
    _check_endpoint(report, plan, router, pinned)
    if report.ok:
        try:
            metrics.snapshot(Pair(pinned.baseline.version, pinned.candidate.version))
            report.add("metrics", True, f"{plan.metrics.type} metrics answer")
        except GrayError as exc:
            report.add("metrics", False, exc.message)
    if not report.ok:
        raise report.failure()
    return report


def _preprocessor_check(
    registry: Registry, plan: Plan, info: ModelVersionInfo, ref: str
) -> tuple[bool, str]:
    """Whether the version's preprocessor is the one it was trained with (or declared none)."""
    try:
        verified = registry.verify_preprocessor(info, plan.model.preprocessor, ref)
    except RegistryError as exc:
        return False, exc.message
    if verified is None and info.preprocessor_sha256 == NO_PREPROCESSOR:
        return True, f"v{info.version}: declared to need no separate preprocessor"
    if verified is None:
        return False, (
            f"v{info.version}: no preprocessor bound, so none can be verified and the "
            f"gateway will not serve it; bind it: gray registry bind {info.name} "
            f"{info.version} PATH"
        )
    return True, (
        f"v{info.version}: sha256 {verified.sha256[:12]}… matches its tag ({verified.binding})"
    )


def _refuse_a_second_rollout(plan: Plan, journal: Journal) -> None:
    active = [s for s in journal.active_for(plan.model.name)]
    if active:
        ids = ", ".join(s.rollout_id for s in active)
        raise RolloutActiveError(
            f"{plan.model.name} is already under an active rollout ({ids}); "
            f"finish it, or `gray rollout abort {active[0].rollout_id}`"
        )


def _check_endpoint(
    report: PreflightReport, plan: Plan, router: Router, pinned: PinnedPair
) -> None:
    """The endpoint answers, serves the plan's baseline with no split, and has both
    versions loaded and warm with the preprocessors the registry tags."""
    try:
        applied = router.read()
        report.route = applied
        report.add(
            "endpoint",
            True,
            f"{redact(plan.router.describe())} answers; serving v{applied.route.baseline}",
        )
        busy = applied.route.candidate and (applied.route.weight > 0 or applied.route.mirror > 0)
        if busy:
            holder = applied.lease.rollout_id if applied.lease else "unknown"
            report.add(
                "endpoint split",
                False,
                f"already sends traffic to v{applied.route.candidate} under rollout {holder}",
            )
        elif not plan.router.shows_served_version:
            report.add(
                "endpoint baseline",
                True,
                f"{plan.router.type} cannot show which version it serves; the plan's baseline "
                f"v{pinned.baseline.version} is taken to be the one its baseline server runs",
            )
        elif applied.route.baseline != pinned.baseline.version:
            report.add(
                "endpoint baseline",
                False,
                f"the endpoint serves v{applied.route.baseline} but the plan's baseline "
                f"{plan.model.baseline} is v{pinned.baseline.version}; users would switch version",
            )
        for side, info in (("baseline", pinned.baseline), ("candidate", pinned.candidate)):
            applied_sha = router.ensure_loaded(info.version)
            if plan.router.shows_preprocessor:
                report.add(f"{side} loaded", *_loaded_check(info.version, applied_sha, info))
            else:
                report.add(
                    f"{side} loaded",
                    True,
                    f"v{info.version} answers; {plan.router.type} cannot show which "
                    "preprocessor its server applies, so the registry's verified binding "
                    "above is the check",
                )
    except RouterError as exc:
        report.add("endpoint", False, exc.message)


def _loaded_check(version: str, applied: str | None, info: ModelVersionInfo) -> tuple[bool, str]:
    """Whether the endpoint applies the preprocessor the registry tags for `version`."""
    tagged = info.preprocessor_sha256
    if tagged is None or applied != tagged:
        return False, (
            f"v{version} is loaded, but the endpoint applies preprocessor "
            f"{_short(applied)} while the registry's tag is {_short(tagged)}: the endpoint "
            "must load it again with its bound preprocessor before it takes traffic"
        )
    return True, f"v{version} loaded and warm, preprocessor {_short(tagged)}, no traffic yet"


def _short(sha256: str | None) -> str:
    if sha256 == NO_PREPROCESSOR:
        return "none (declared)"
    return "none" if sha256 is None else f"sha256 {sha256[:12]}…"


def create_rollout(
    plan: Plan,
    plan_text: str,
    report: PreflightReport,
    journal: Journal,
    *,
    rollout_id: str | None = None,
    until_stage: int | None = None,
    now: float | None = None,
    retry_of: str | None = None,
) -> loop.Step:
    """Take the lease one epoch above the one in force and write the rollout's first record.
    `retry_of`: the ended rollout this one retries; its journal is told the new id."""
    assert report.baseline and report.candidate
    current = report.route.lease if report.route else None
    started = now if now is not None else time.time()
    state = RolloutState(
        rollout_id=rollout_id or new_rollout_id(plan.model.name),
        plan_name=plan.name,
        model=plan.model.name,
        baseline=report.baseline,
        candidate=report.candidate,
        baseline_ref=plan.model.baseline,
        candidate_ref=plan.model.candidate,
        epoch=(current.epoch if current else 0) + 1,
        started_at=started,
        updated_at=started,
        until_stage=until_stage,
        retry_of=retry_of,
    )
    journal.create(state, plan_text)
    if retry_of:
        from gray.controller.rollout_retry import record_retry

        record_retry(journal, retry_of, state.rollout_id)
    if isinstance(plan.router, GatewayRouterSpec):  # the one type `gray rollback` writes early
        save_endpoint(
            journal.local,
            state.rollout_id,
            Endpoint(
                plan.router.type,
                plan.router.addresses[0],
                plan.router.timeout,
                plan.router.addresses,
            ),
        )
    return loop.begin(plan, state)


def stage_number(plan: Plan, ref: str | None) -> int | None:
    """`--until-stage` (a 1-based number or a name) as a stage index."""
    if ref is None:
        return None
    try:
        return plan.stage_index(ref)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _require_active(rollout_id: str, state: RolloutState) -> None:
    if state.phase.terminal:
        raise RolloutError(
            f"rollout {rollout_id} already ended: {state.phase.value}. {state.reason}"
        )


def prepare_resume(
    journal: Journal,
    rollout_id: str,
    until_stage: str | None,
    now: float | None = None,
    *,
    watch: bool = False,
) -> tuple[Plan, loop.Step]:
    """Continue a rollout under a new epoch, which fences any controller still running it.
    `watch`: keep a rollout that holds traffic where it is, judging it (see `loop.resume`)."""
    record, plan = load_rollout(journal, rollout_id)
    until = stage_number(plan, until_stage)
    _require_active(rollout_id, record.state)
    state = record.state.with_(epoch=record.state.epoch + 1)
    return plan, loop.resume(
        plan, state, now if now is not None else time.time(), until, watch=watch
    )


COMMANDS = ("approve", "pause", "unpause", "abort", "promote")


def send_command(
    journal: Journal, rollout_id: str, command: str, reason: str = ""
) -> tuple[RolloutState, Plan]:
    """Post `command` for the rollout's controller; the rollout's state and plan as read."""
    if command not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    record, plan = load_rollout(journal, rollout_id)
    _require_active(rollout_id, record.state)
    journal.post_command(rollout_id, command, reason)
    return record.state, plan
