"""What a gate decides at a look, with the numbers behind it, as JSON-safe values."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gray.controller.gates.config import GateConfig


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NODATA = "nodata"

    @property
    def label(self) -> str:
        return self.value.upper()


@dataclass(frozen=True)
class Verdict:
    """One gate at one look.

    `estimate`, `interval` and `allowed` are in the gate's `unit`: "ratio"
    (candidate rate / baseline rate), "difference" (accuracy points as a share,
    candidate minus baseline), "rate" (a share of mirrored pairs) or "shift" (how
    far the candidate's latency CDF lies below the baseline's). `interval` is the
    confidence sequence at this look (bounds may be 0 or infinite before data
    decide them). `p_value` is always-valid: p <= alpha at any look is a FAIL.
    `method` says what a rate gate assumed: `clustered` (the units are hash groups of
    the routing key, valid when events cluster by key) or `per_request` (requests
    assumed independent: the source gave no group counts); empty for other gates.
    """

    gate: str
    outcome: Outcome
    estimate: float | None
    interval: tuple[float, float] | None
    allowed: float | None
    e_value: float | None
    p_value: float | None
    alpha: float
    counts: dict[str, int]
    metric: str = ""
    unit: str = "ratio"
    note: str = ""
    extra: dict[str, float | None] = field(default_factory=dict)
    method: str = ""

    @classmethod
    def no_data(
        cls,
        config: GateConfig,
        *,
        allowed: float | None,
        unit: str,
        counts: dict[str, int],
        note: str,
    ) -> Verdict:
        """NODATA: nothing to estimate yet, with the reason in `note`."""
        return cls(
            gate=config.key,
            outcome=Outcome.NODATA,
            estimate=None,
            interval=None,
            allowed=allowed,
            e_value=None,
            p_value=None,
            alpha=config.alpha,
            counts=counts,
            metric=config.metric,
            unit=unit,
            note=note,
        )

    def sentence(self) -> str:
        from gray.controller.gates.wording import verdict_sentence

        return verdict_sentence(self)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "gate": self.gate,
            "outcome": self.outcome.value,
            "estimate": number_out(self.estimate),
            "interval": None
            if self.interval is None
            else [number_out(self.interval[0]), number_out(self.interval[1])],
            "allowed": number_out(self.allowed),
            "e_value": number_out(self.e_value),
            "p_value": number_out(self.p_value),
            "alpha": self.alpha,
            "counts": dict(self.counts),
            "metric": self.metric,
            "unit": self.unit,
            "note": self.note,
            "extra": {key: number_out(value) for key, value in self.extra.items()},
            "sentence": self.sentence(),
        }
        if self.method:
            out["method"] = self.method
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        interval = data.get("interval")
        return cls(
            gate=str(data["gate"]),
            outcome=Outcome(data["outcome"]),
            estimate=number_in(data.get("estimate")),
            interval=None
            if interval is None
            else (_bound_in(interval[0], 0.0), _bound_in(interval[1], math.inf)),
            allowed=number_in(data.get("allowed")),
            e_value=number_in(data.get("e_value")),
            p_value=number_in(data.get("p_value")),
            alpha=float(data["alpha"]),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            metric=str(data.get("metric", "")),
            unit=str(data.get("unit", "ratio")),
            note=str(data.get("note", "")),
            extra={str(k): number_in(v) for k, v in (data.get("extra") or {}).items()},
            method=str(data.get("method", "")),
        )


@dataclass(frozen=True)
class StageVerdict:
    """All gates of a stage at one look. Any FAIL fails it; missing data never passes it."""

    outcome: Outcome
    verdicts: tuple[Verdict, ...]

    @classmethod
    def combine(cls, verdicts: tuple[Verdict, ...]) -> StageVerdict:
        outcomes = {v.outcome for v in verdicts}
        for outcome in (Outcome.FAIL, Outcome.NODATA, Outcome.INCONCLUSIVE):
            if outcome in outcomes:
                return cls(outcome, verdicts)
        return cls(Outcome.PASS, verdicts)

    def sentence(self) -> str:
        from gray.controller.gates.wording import stage_sentence

        return stage_sentence(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "sentence": self.sentence(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageVerdict:
        return cls(
            outcome=Outcome(data["outcome"]),
            verdicts=tuple(Verdict.from_dict(v) for v in data.get("verdicts", [])),
        )


CROSSED = "its lower and upper confidence bounds crossed: it moved during the stage"


def ordered_interval(low: float, high: float) -> tuple[tuple[float, float], str]:
    """The interval to report, and a note when the two one-sided bounds crossed.

    Each bound errs with probability at most alpha on its own; bounds that cross
    say the quantity was not steady during the stage (or one bound erred). The
    decision stands; the interval is shown in order with that note.
    """
    if low <= high:
        return (low, high), ""
    return (high, low), CROSSED


def join_notes(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def number_out(value: float | None) -> float | str | None:
    """A float for JSON: infinities as "inf"/"-inf", NaN as null."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def number_in(value: float | str | None) -> float | None:
    if value is None:
        return None
    return float(value)


def _bound_in(value: float | str | None, missing: float) -> float:
    parsed = number_in(value)
    return missing if parsed is None else parsed
