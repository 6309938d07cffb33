"""Metrics-source adapters behind the `MetricsSource` protocol (`base.py`).

A metrics type is a `MetricsSpec` subclass (the plan block's fields) whose `build`
makes its adapter; `plugins.METRICS_TYPES` finds it by the plan's `type`, gray's
own `gateway` (`gateway_spec.py`, adapter in `gateway.py`) or one another package
declares in the `gray.metrics` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gray.controller.metrics.base import MetricsSource
    from gray.controller.plan.models import MetricsSpec, Plan


def build_metrics(spec: MetricsSpec, plan: Plan) -> MetricsSource:
    """The adapter for a plan's `metrics:` block; `plan` gives what the source counts
    (the gates' latency edges) and what it may share with the router (an address).
    A plan read by `parse_plan` had its unfed gates refused already; this guards plans
    built around validation (ConfigError naming the first such gate)."""
    from gray.controller.errors import ConfigError
    from gray.controller.plan.checks import unfed_gate_problems

    for _, message in unfed_gate_problems(plan, spec):
        raise ConfigError(message)
    return spec.build(plan)
