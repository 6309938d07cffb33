"""What each stage of a plan can detect at a given traffic: its gates, as the judge splits
alpha over them, simulated with the traffic the stage would give them
(`gates/detectability.py`).

Assumed: the endpoint serves `rps` requests per second, every one within the stage's
audience (an audience only lowers the traffic); a share `labelled` of them gets a label;
a stage at weight 100 % compares with the baseline's requests in the stages before it.
The rate gates are simulated with the test they will decide by: the clustered test when
the plan's metrics source counts per routing-key group (`MetricsSpec.counts_groups`),
else the per-request test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gray.controller import gates
from gray.controller.gates.config import GateConfig
from gray.controller.gates.detectability import Detectability, GateTraffic, detectabilities
from gray.controller.gates.metrics import metric
from gray.controller.plan.models import Plan
from gray.controller.plan.units import parse_share
from gray.controller.types import ROUTING_GROUPS, Snapshot

# The baseline's rates a simulation assumes unless told (`--base-rate`), by short name.
DEFAULT_BASE_RATES: dict[str, float] = {
    "error": 0.01,
    "bad_request": 0.01,
    "latency": 0.05,  # requests slower than a latency gate's slo
    "accuracy": 0.95,
    "wrong_prediction": 0.05,
    "disagreement": 0.01,  # what an acceptable candidate disagrees on in shadow
}
_SHORT_NAMES = {
    "error_rate": "error",
    "bad_request_rate": "bad_request",
    "latency": "latency",
    "accuracy": "accuracy",
    "wrong_prediction_rate": "wrong_prediction",
    "disagreement": "disagreement",
}


@dataclass(frozen=True)
class StageDetection:
    """One stage at the given traffic: its candidate requests and what each gate detects."""

    number: int
    name: str
    dwell: float
    candidate_requests: float
    gates: tuple[Detectability, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "dwell_seconds": self.dwell,
            "candidate_requests": round(self.candidate_requests),
            "gates": [gate.to_dict() for gate in self.gates],
        }


def parse_base_rates(text: str | None) -> dict[str, float]:
    """`error=1%,latency=5%` over the defaults; a ValueError names what is wrong."""
    rates = dict(DEFAULT_BASE_RATES)
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        key = _SHORT_NAMES.get(name.strip(), name.strip())
        if key not in rates or not value.strip():
            known = ", ".join(f"{k}=" for k in DEFAULT_BASE_RATES)
            raise ValueError(f"expected NAME=RATE with NAME one of {known}, got {part.strip()!r}")
        rate = parse_share(value.strip())
        if not 0 < rate < 1:
            raise ValueError(f"{key} must be a rate between 0 and 100 %, got {value.strip()!r}")
        rates[key] = rate
    return rates


def event_rate(metric_name: str, rates: Mapping[str, float]) -> float:
    """The baseline's rate of the events a gate counts (accuracy counts wrong predictions)."""
    key = _SHORT_NAMES.get(metric_name)
    if key is None:
        return 0.0
    rate = rates[key]
    return 1.0 - rate if metric(metric_name).higher_is_better else rate


def stage_gates(
    plan: Plan, rps: float, labelled: float = 1.0
) -> list[list[tuple[GateConfig, GateTraffic]]]:
    """Per stage, the gates that judge it (alpha split as the judge splits it) with the
    traffic each gets at `rps` requests per second."""
    stages = []
    baseline_before = 0.0
    for index, stage in enumerate(plan.stages):
        judge = gates.start_stage(
            plan.stage_gates(index),
            plan.alpha,
            Snapshot(taken_at=0.0),
            exposure=stage.exposure,
            mirrored=stage.mirror > 0,
        )
        stages.append(
            [
                (
                    gate.config,
                    _gate_traffic(plan, index, rps, labelled, baseline_before, gate.config),
                )
                for gate in judge.gates
            ]
        )
        if not stage.is_shadow:
            baseline_before += rps * (1.0 - stage.weight) * stage.dwell
    return stages


def plan_detectability(
    plan: Plan, rps: float, rates: Mapping[str, float] | None = None, labelled: float = 1.0
) -> list[StageDetection]:
    """Every stage's gates at `rps` requests per second."""
    rates = dict(rates or DEFAULT_BASE_RATES)
    wanted: dict[str, tuple[GateConfig, list[tuple[int, GateTraffic, float]]]] = {}
    for index, judged in enumerate(stage_gates(plan, rps, labelled)):
        for config, traffic in judged:
            key = json.dumps(config.to_dict(), sort_keys=True)
            wanted.setdefault(key, (config, []))[1].append(
                (index, traffic, event_rate(config.metric, rates))
            )
    requests = [
        rps * (stage.mirror if stage.is_shadow else stage.weight) * stage.dwell
        for stage in plan.stages
    ]
    found: dict[int, list[Detectability]] = {}
    for config, items in wanted.values():
        results = detectabilities(config, [(traffic, base) for _, traffic, base in items])
        for (index, _, _), result in zip(items, results, strict=True):
            found.setdefault(index, []).append(result)
    return [
        StageDetection(index + 1, stage.name, stage.dwell, requests[index], tuple(found[index]))
        for index, stage in enumerate(plan.stages)
        if index in found
    ]


def _gate_traffic(
    plan: Plan, index: int, rps: float, labelled: float, baseline_before: float, config: GateConfig
) -> GateTraffic:
    stage = plan.stages[index]
    definition = metric(config.metric)
    per_look = rps * plan.interval
    looks = max(int(stage.dwell // plan.interval), 1)
    if definition.needs_pairs or stage.is_shadow:
        mirrored = per_look * stage.mirror
        candidate, baseline, paired = mirrored, mirrored, True
    else:
        candidate, baseline, paired = per_look * stage.weight, per_look * (1 - stage.weight), False
    scale = labelled if definition.needs_labels else 1.0
    reference = baseline_before * scale if not paired and stage.weight >= 1.0 else 0.0
    return GateTraffic(
        candidate=candidate * scale,
        baseline=baseline * scale,
        looks=looks,
        interval=plan.interval,
        reference=reference,
        paired=paired,
        groups=ROUTING_GROUPS if plan.metrics.counts_groups() else 0,
    )


def margin_warnings(plan: Plan, rps: float, stages: list[StageDetection]) -> list[str]:
    """One line per stage whose gates cannot show an identical candidate within their
    margin in the stage's dwell at this traffic: such a stage ends INCONCLUSIVE."""
    from gray.controller.gates.detectability import POWER, describe_regression
    from gray.controller.plan.units import format_duration

    then = plan.policies.inconclusive.then
    lines = []
    for stage in stages:
        short = [gate for gate in stage.gates if not gate.reaches_margin]
        if not short:
            continue
        told = "; ".join(
            f"{gate.gate} (passes {gate.passes_alike:.0%} of the time; catches "
            + (
                f"{describe_regression(gate, gate.smallest)} or more"
                if gate.smallest is not None
                else "no regression"
            )
            + f" {POWER:.0%} of the time)"
            for gate in short
        )
        lines.append(
            f"stage {stage.number}/{len(plan.stages)} ({stage.name}) cannot reach its own "
            f"margin at {rps:g} requests/s: in {format_duration(stage.dwell)} these gates "
            f"cannot show a candidate identical to the baseline within their allowance, so "
            f"the stage ends INCONCLUSIVE and policies.inconclusive decides (then: {then}): " + told
        )
    return lines
