"""A plan laid out in time: each stage's traffic, audience, dwell and gates, when it ends,
and the alpha each gate gets where the judge splits the stage's budget."""

from __future__ import annotations

from gray.controller.plan.models import GateSpec, Plan, StageSpec


def gate_alphas(plan: Plan) -> dict[str, tuple[GateSpec, list[float], list[str]]]:
    """Each distinct gate with the alpha it gets in the stages that use it, as the judge
    splits it (gates that do not apply to a stage, such as disagreement without
    mirrored traffic, are left out of that stage's split)."""
    from gray.controller import gates
    from gray.controller.types import Snapshot

    found: dict[str, tuple[GateSpec, list[float], list[str]]] = {}
    for index, stage in enumerate(plan.stages):
        specs = {spec.key: spec for spec in plan.stage_gates(index)}
        judge = gates.start_stage(
            tuple(specs.values()),
            plan.alpha,
            Snapshot(taken_at=0.0),
            exposure=stage.exposure,
            mirrored=stage.mirror > 0,
        )
        for state in judge.gates:
            spec = specs[state.config.key]
            _, alphas, stages = found.setdefault(spec.describe(), (spec, [], []))
            if not any(abs(a - state.config.alpha) < 1e-12 for a in alphas):
                alphas.append(state.config.alpha)
            stages.append(str(index + 1))
    return found


def total_dwell(plan: Plan) -> float:
    """The plan's dwell in seconds, extensions and approval waits left out."""
    return sum(stage.dwell for stage in plan.stages)


def timeline(plan: Plan, rps: float | None) -> list[dict[str, object]]:
    """One row per stage; with `rps` (the endpoint's requests per second), the requests
    the candidate gets in the stage."""
    rows: list[dict[str, object]] = []
    elapsed = 0.0
    for index, stage in enumerate(plan.stages):
        elapsed += stage.dwell
        row: dict[str, object] = {
            "number": index + 1,
            "name": stage.name,
            "weight": stage.weight,
            "mirror": stage.mirror,
            "audience": describe_audience(stage),
            "dwell_seconds": stage.dwell,
            "ends_at_seconds": elapsed,
            "approval": stage.approval,
            "hold": stage.hold,
            "gates": [gate.describe() for gate in plan.stage_gates(index)],
            "gate_changes": _gate_changes(plan, index),
        }
        if rps is not None:
            # Before audience filtering: an audience only lowers this.
            share = stage.weight if stage.weight > 0 else stage.mirror
            row["candidate_requests"] = round(rps * share * stage.dwell)
        rows.append(row)
    return rows


def _gate_changes(plan: Plan, index: int) -> str:
    """`plan`, or how the stage's gates differ from the plan's: `+disagreement -accuracy`."""
    own = {gate.key: gate for gate in plan.stage_gates(index)}
    base = {gate.key: gate for gate in plan.gates}
    changes = [f"+{key}" for key in own if key not in base]
    changes += [f"-{key}" for key in base if key not in own]
    changes += [f"~{key}" for key in own if key in base and own[key] != base[key]]
    return " ".join(changes) or "plan"


def describe_audience(stage: StageSpec) -> str:
    parts = list(stage.audience.cidr)
    for header, values in stage.audience.headers.items():
        listed = values if isinstance(values, list) else [values]
        parts.append(f"{header} in {'|'.join(listed)}")
    return ", ".join(parts) or "everyone"
