"""The share family: the share of mirrored pairs on which the candidate's output differs
from the baseline's (shadow disagreement), against a maximum (see `stats/proportion.py`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from gray.controller.gates.config import GateConfig
from gray.controller.gates.increments import Increment
from gray.controller.gates.stats import proportion
from gray.controller.gates.stats.special import exp_or_inf
from gray.controller.gates.verdict import (
    Outcome,
    Verdict,
    join_notes,
    number_in,
    number_out,
    ordered_interval,
)
from gray.controller.types import VersionCounters


@dataclass(frozen=True)
class ShareGate:
    config: GateConfig
    pairs: int = 0
    disagreements: int = 0
    lower: float = 0.0
    upper: float = 1.0
    log_e: float = 0.0
    max_log_e: float = -math.inf

    family: ClassVar[str] = "share"

    @property
    def limit(self) -> float:
        return float(self.config.max if self.config.max is not None else 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "config": self.config.to_dict(),
            "pairs": self.pairs,
            "disagreements": self.disagreements,
            "lower": self.lower,
            "upper": self.upper,
            "log_e": number_out(self.log_e),
            "max_log_e": number_out(self.max_log_e),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShareGate:
        max_log_e = number_in(data.get("max_log_e"))
        return cls(
            config=GateConfig.from_dict(data["config"]),
            pairs=int(data.get("pairs", 0)),
            disagreements=int(data.get("disagreements", 0)),
            lower=float(data.get("lower", 0.0)),
            upper=float(data.get("upper", 1.0)),
            log_e=float(number_in(data.get("log_e")) or 0.0),
            max_log_e=-math.inf if max_log_e is None else max_log_e,
        )

    @classmethod
    def start(cls, config: GateConfig, baseline_before: VersionCounters) -> ShareGate:
        return cls(config=config)

    def update(self, seen: Increment) -> ShareGate:
        if seen.pairs <= 0:
            return self
        pairs = self.pairs + seen.pairs
        disagreements = self.disagreements + seen.disagreements
        low, high = proportion.confidence_bounds(disagreements, pairs, self.config.alpha)
        log_e = float(proportion.log_e_value_at_most(self.limit, disagreements, pairs))
        return replace(
            self,
            pairs=pairs,
            disagreements=disagreements,
            lower=max(self.lower, float(low[0])),
            upper=min(self.upper, float(high[0])),
            log_e=log_e,
            max_log_e=max(self.max_log_e, log_e),
        )

    def verdict(self) -> Verdict:
        config = self.config
        counts = {
            "pairs": self.pairs,
            "disagreements": self.disagreements,
            "min_samples": config.min_samples,
        }
        if self.pairs == 0:
            return Verdict.no_data(
                config,
                allowed=self.limit,
                unit="rate",
                counts=counts,
                note="no mirrored pairs yet",
            )
        failed = self.max_log_e >= math.log(1.0 / config.alpha)
        passed = self.upper < self.limit and self.pairs >= config.min_samples
        outcome = Outcome.FAIL if failed else Outcome.PASS if passed else Outcome.INCONCLUSIVE
        interval, crossed = ordered_interval(self.lower, self.upper)
        return Verdict(
            gate=config.key,
            outcome=outcome,
            estimate=self.disagreements / self.pairs,
            interval=interval,
            allowed=self.limit,
            e_value=exp_or_inf(self.log_e),
            p_value=min(1.0, exp_or_inf(-self.max_log_e)),
            alpha=config.alpha,
            counts=counts,
            metric=config.metric,
            unit="rate",
            note=join_notes(crossed),
            extra={},
        )
