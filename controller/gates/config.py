"""A gate as the judge keeps it: the plan's gate with its share of alpha resolved."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

COUNT_METRICS = ("error_rate", "bad_request_rate", "latency", "wrong_prediction_rate", "accuracy")
LABEL_METRICS = ("wrong_prediction_rate", "accuracy")


class GateLike(Protocol):
    """The fields of `plan.GateSpec` the judge reads (kept structural: no plan import here)."""

    @property
    def key(self) -> str: ...

    metric: str
    slo: float | None
    max_increase: float | None
    max_increase_abs: float | None
    max_decrease: float | None
    max: float | None
    tolerance: float | None
    alpha: float | None
    min_samples: int
    enabled: bool


@dataclass(frozen=True)
class GateConfig:
    key: str
    metric: str
    alpha: float
    min_samples: int
    slo: float | None = None
    max_increase: float | None = None
    max_increase_abs: float | None = None
    max_decrease: float | None = None
    max: float | None = None
    tolerance: float | None = None

    @classmethod
    def from_spec(cls, spec: GateLike, alpha: float) -> GateConfig:
        return cls(
            key=spec.key,
            metric=spec.metric,
            alpha=alpha,
            min_samples=int(spec.min_samples),
            slo=spec.slo,
            max_increase=spec.max_increase,
            max_increase_abs=spec.max_increase_abs,
            max_decrease=spec.max_decrease,
            max=spec.max,
            tolerance=spec.tolerance,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        return cls(**data)
