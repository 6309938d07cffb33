"""Checks a plan can only fail as a whole: impossible stage orders, gates without margins."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import ValidationError

from gray.controller.gates.config import MARGIN_FIELDS
from gray.controller.gates.metrics import metric
from gray.controller.plan.models import (
    HOOK_KINDS,
    PAGERDUTY_EVENTS,
    FieldProblem,
    GateSpec,
    MetricsSpec,
    NotifySpec,
    Plan,
    StageGate,
    resolve_stage_gates,
    validate_cidrs,
)
from gray.controller.plan.units import format_duration, format_share

Problem = FieldProblem


def semantic_problems(plan: Plan) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(_model_problems(plan))
    for index, gate in enumerate(plan.gates):
        problems.extend(_gate_problems(gate, ("gates", index)))
    problems.extend(_duplicate_gates(plan.gates, ("gates",)))
    problems.extend(_stage_problems(plan))
    problems.extend(_notify_problems(plan))
    problems.extend(plan.router.plan_problems(plan))
    problems.extend(plan.metrics.plan_problems(plan))
    problems.extend(unfed_gate_problems(plan, plan.metrics))
    if plan.router.lease_ttl is not None and plan.router.lease_ttl <= plan.interval:
        problems.append(
            (
                ("router", "lease_ttl"),
                f"lease_ttl must be longer than the interval ({plan.interval:g}s): the "
                "controller renews the lease once per look",
            )
        )
    if plan.promote and plan.promote.alias == plan.promote.keep_previous_as:
        problems.append(
            (
                ("promote", "keep_previous_as"),
                f"keep_previous_as must differ from alias '{plan.promote.alias}'",
            )
        )
    return problems


def _model_problems(plan: Plan) -> Iterator[Problem]:
    model = plan.model
    if model.baseline == model.candidate:
        yield (
            ("model", "candidate"),
            f"candidate is the same as baseline ({model.baseline}); "
            "a rollout compares two versions",
        )
    binding = model.preprocessor
    if binding is not None:
        given = [f for f in ("artifact", "registered_model") if getattr(binding, f)]
        if len(given) != 1:
            yield (
                ("model", "preprocessor"),
                "expected exactly one of 'artifact' (a path inside the model version) or "
                "'registered_model' (a model resolved with the same alias)",
            )


def _gate_problems(gate: GateSpec | StageGate, path: tuple[str | int, ...]) -> Iterator[Problem]:
    definition = metric(gate.metric)
    allowed = definition.margins  # a plan's gate sets at least one of them
    for name in MARGIN_FIELDS:
        if getattr(gate, name) is not None and name not in allowed:
            expected = " or ".join(f"'{a}'" for a in allowed)
            yield (
                (*path, name),
                f"'{name}' does not apply to a {gate.metric} gate (it takes {expected})",
            )
    if gate.slo is not None and not definition.needs_slo:
        yield ((*path, "slo"), f"'slo' applies only to latency gates, not {gate.metric}")
    if isinstance(gate, GateSpec):
        if not any(getattr(gate, name) is not None for name in allowed):
            expected = " or ".join(f"'{a}'" for a in allowed)
            yield (path, f"a {gate.metric} gate needs its allowed margin: {expected}")
        if definition.needs_slo and gate.slo is None:
            yield (
                path,
                "a latency gate needs 'slo', the latency edge it counts slow requests over "
                "(e.g. slo: 250ms)",
            )
    relative = "max_increase" in allowed
    if relative and gate.max_increase == 0 and not gate.max_increase_abs:
        yield (
            (*path, "max_increase"),
            "max_increase: 0% can never pass; allow a margin (e.g. 10%) or max_increase_abs",
        )


def unfed_gate_problems(plan: Plan, source: MetricsSpec) -> Iterator[Problem]:
    """Each gate judging some stage that the metrics `source` cannot feed, at the gate's
    own `metric` field: a plan-level gate where the plan declares it, a stage's gate
    where only the stage does."""
    unfed = source.unfed_gates(plan)
    if not unfed:
        return
    judged = {gate.metric for index in range(len(plan.stages)) for gate in plan.stage_gates(index)}
    places: list[tuple[str, tuple[str | int, ...]]] = [
        (gate.metric, ("gates", index, "metric")) for index, gate in enumerate(plan.gates)
    ]
    declared = {gate.metric for gate in plan.gates}
    for number, stage in enumerate(plan.stages):
        places.extend(
            (gate.metric, ("stages", number, "gates", index, "metric"))
            for index, gate in enumerate(stage.gates)
            if gate.metric not in declared
        )
    for name, path in places:
        if name in judged and name in unfed:
            yield path, f"metrics type {source.type} cannot feed the {name} gate: {unfed[name]}"


def _duplicate_gates(gates: tuple[GateSpec, ...], path: tuple[str | int, ...]) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, gate in enumerate(gates):
        if gate.key in seen:
            yield (
                (*path, index),
                f"gate {gate.key} is given twice (first at gates[{seen[gate.key]}])",
            )
        seen.setdefault(gate.key, index)


def _stage_problems(plan: Plan) -> Iterator[Problem]:
    names: dict[str, int] = {}
    previous_weight = 0.0
    for index, stage in enumerate(plan.stages):
        path: tuple[str | int, ...] = ("stages", index)
        if stage.name in names:
            yield (
                (*path, "name"),
                f"stage name '{stage.name}' is used twice (first at stages[{names[stage.name]}])",
            )
        names.setdefault(stage.name, index)
        if stage.weight == 0 and stage.mirror == 0:
            yield (
                path,
                "a stage needs a weight (traffic answered by the candidate) or a mirror "
                "(traffic copied to it), e.g. weight: 5%",
            )
        if stage.weight < previous_weight and not stage.allow_decrease:
            yield (
                (*path, "weight"),
                f"weight goes down from {format_share(previous_weight)} to "
                f"{format_share(stage.weight)}; set allow_decrease: true if that is intended",
            )
        previous_weight = (
            max(previous_weight, stage.weight) if not stage.allow_decrease else (stage.weight)
        )
        yield from _min_dwell_problems(plan, index)
        if plan.interval > stage.dwell:
            yield (
                (*path, "dwell"),
                f"dwell {format_duration(stage.dwell)} is shorter than the plan's interval "
                f"{format_duration(plan.interval)}; the stage would end before its first look",
            )
        for cidr_index, message in validate_cidrs(stage.audience.cidr):
            yield ((*path, "audience", "cidr", cidr_index), message)
        for gate_index, gate in enumerate(stage.gates):
            yield from _gate_problems(gate, (*path, "gates", gate_index))
        try:
            resolved = resolve_stage_gates(plan.gates, stage.gates)
        except ValidationError as exc:
            first = exc.errors()[0]
            yield (
                (*path, "gates"),
                f"the stage's gate changes do not make a valid gate: {first['msg']}",
            )
            continue
        for gate in resolved:
            if gate not in plan.gates:
                yield from (((*path, "gates"), message) for _, message in _gate_problems(gate, ()))
        if not resolved and stage.weight > 0:
            yield (
                (*path, "gates"),
                "no gate judges this stage; add gates to the plan or to the stage",
            )


def _min_dwell_problems(plan: Plan, index: int) -> Iterator[Problem]:
    """min_dwell is the shortest a stage runs, dwell the longest: the first cannot exceed
    the second, whether the stage sets it or takes the plan's."""
    stage = plan.stages[index]
    shortest = plan.stage_min_dwell(index)
    if shortest is None or shortest <= stage.dwell:
        return
    dwell = format_duration(stage.dwell)
    if stage.min_dwell is not None:
        yield (
            ("stages", index, "min_dwell"),
            f"min_dwell {format_duration(shortest)} is longer than the stage's dwell {dwell} "
            "(dwell is the longest a stage runs, min_dwell the shortest)",
        )
    else:
        yield (
            ("min_dwell",),
            f"the plan's min_dwell {format_duration(shortest)} is longer than the dwell of "
            f"stage '{stage.name}' ({dwell}); give that stage its own min_dwell or a longer "
            "dwell",
        )


def _notify_problems(plan: Plan) -> Iterator[Problem]:
    for index, target in enumerate(plan.notify):
        yield from _notify_target_problems(target, ("notify", index))
    for kind in HOOK_KINDS:
        hook = plan.hooks.get(kind)
        if hook is None:
            continue
        yield from _webhook_url_problems(("hooks", kind, "url"), hook.url)
        ttl = plan.router.lease_ttl
        if ttl is not None and hook.timeout >= ttl:
            yield (
                ("hooks", kind, "timeout"),
                f"timeout {format_duration(hook.timeout)} is not shorter than router.lease_ttl "
                f"{format_duration(ttl)}: the candidate's traffic would expire while the "
                "controller waits for the hook",
            )


def _notify_target_problems(target: NotifySpec, path: tuple[str | int, ...]) -> Iterator[Problem]:
    """What one `notify` entry lacks, or gives that its kind does not take."""
    if target.url is None and target.kind != "pagerduty":
        yield path, f"a {target.kind} notification needs its webhook url"
    if target.url is not None:
        yield from _webhook_url_problems((*path, "url"), target.url)
    if target.kind == "pagerduty":
        if not target.routing_key:
            yield (
                path,
                "a pagerduty notification needs routing_key, the integration key of the "
                "service's Events API v2 integration "
                '(routing_key: "${PAGERDUTY_ROUTING_KEY}")',
            )
        others = [e for e in target.events or () if e not in PAGERDUTY_EVENTS]
        if others:
            yield (
                (*path, "events"),
                f"pagerduty takes {', '.join(PAGERDUTY_EVENTS)} (a rollback or abort "
                f"triggers an incident, a promotion resolves it), not {', '.join(others)}",
            )
    elif target.routing_key is not None:
        yield (*path, "routing_key"), f"routing_key is for pagerduty, not {target.kind}"
    if target.headers and target.kind != "webhook":
        yield (
            (*path, "headers"),
            f"headers are for kind webhook; a {target.kind} webhook's URL is its credential",
        )


def _webhook_url_problems(path: tuple[str | int, ...], url: str) -> Iterator[Problem]:
    if not url.startswith(("http://", "https://")):
        yield (path, f"expected an http:// or https:// webhook URL, got {url!r}")
