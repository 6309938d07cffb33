"""A gate's fields, declared once: the plan's gate (`plan.models.GateSpec`) and a stage's
change to it (`StageGate`) are these fields, and the judge keeps them as `GateConfig`
with the gate's share of alpha resolved."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gray.controller.gates.metrics import METRIC_NAMES, METRICS, metric
from gray.controller.plan.units import duration_between, parse_share

# A gate's latency edge, in seconds (README "Durations").
SLO_RANGE = (0.001, 600.0)
# Counts beyond these are typos; the gates' arithmetic turns them into floats.
MAX_COUNT = 1_000_000_000

_LatencySlo = Annotated[float, BeforeValidator(duration_between(*SLO_RANGE))]
_Share = Annotated[float, BeforeValidator(parse_share)]
# The metrics a plan accepts, in the table's order (a typo is told the known ones).
MetricName = Literal[METRIC_NAMES]


class GateFields(BaseModel):
    """One gate: a metric, the margin the candidate may use, and its error budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: MetricName
    slo: _LatencySlo | None = None
    max_increase: _Share | None = None
    max_increase_abs: _Share | None = None
    max_decrease: _Share | None = None
    max: _Share | None = None
    tolerance: _Share | None = None
    alpha: float | None = Field(default=None, gt=0, lt=0.5)
    min_samples: int = Field(default=200, ge=1, le=MAX_COUNT)
    enabled: bool = True

    @property
    def key(self) -> str:
        """`error_rate`, or `latency<250ms` for a gate with a latency edge."""
        return metric(self.metric).key(self.slo)


# The fields that hold a margin, in the order a gate declares them (each metric takes some).
MARGIN_FIELDS: tuple[str, ...] = tuple(
    name
    for name in GateFields.model_fields
    if any(name in definition.margins for definition in METRICS.values())
)


class GateConfig(GateFields):
    """A gate as the judge keeps it: enabled, applicable, its alpha resolved.

    Stored in the judge state as the flat mapping of its fields and its `key`.
    """

    alpha: float

    @classmethod
    def from_spec(cls, spec: GateFields, alpha: float) -> GateConfig:
        return cls.model_construct(**{**spec.model_dump(exclude={"enabled"}), "alpha": alpha})

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.model_dump(exclude={"enabled"})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        # Written by this class, so it is not parsed again (a stored slo is seconds, not
        # a duration string); the key is derived from metric and slo as when it was written.
        fields = {name: value for name, value in data.items() if name in cls.model_fields}
        return cls.model_construct(**fields)
