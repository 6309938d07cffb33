"""The shift family: is the candidate's latency CDF within `tolerance` of the baseline's
everywhere? Judged on the gateway's fine latency histogram (see `stats/cdf.py`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from gray.controller.gates.config import GateConfig
from gray.controller.gates.increments import Increment
from gray.controller.gates.stats import cdf
from gray.controller.gates.verdict import (
    Outcome,
    Verdict,
    join_notes,
    number_in,
    number_out,
    ordered_interval,
)
from gray.controller.types import VersionCounters

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


@dataclass(frozen=True)
class ShiftGate:
    config: GateConfig
    # Cumulative histograms accumulated over the stage: (edge seconds, count at or below).
    candidate: tuple[tuple[float, int], ...] = ()
    baseline: tuple[tuple[float, int], ...] = ()
    lower: float = 0.0
    upper: float = 1.0
    min_p_value: float = 1.0

    family: ClassVar[str] = "shift"

    @property
    def tolerance(self) -> float:
        return float(self.config.tolerance or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "config": self.config.to_dict(),
            "candidate": [[number_out(e), c] for e, c in self.candidate],
            "baseline": [[number_out(e), c] for e, c in self.baseline],
            "lower": self.lower,
            "upper": self.upper,
            "min_p_value": self.min_p_value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShiftGate:
        return cls(
            config=GateConfig.from_dict(data["config"]),
            candidate=_histogram(data.get("candidate", [])),
            baseline=_histogram(data.get("baseline", [])),
            lower=float(data.get("lower", 0.0)),
            upper=float(data.get("upper", 1.0)),
            min_p_value=float(data.get("min_p_value", 1.0)),
        )

    @classmethod
    def start(cls, config: GateConfig, baseline_before: VersionCounters) -> ShiftGate:
        return cls(config=config)

    def update(self, seen: Increment) -> ShiftGate:
        candidate = _added(self.candidate, seen.candidate.latency_buckets)
        baseline = _added(self.baseline, seen.baseline.latency_buckets)
        edges, candidate_counts, baseline_counts = _aligned(candidate, baseline)
        track = cdf.ShiftTrack(self.config.alpha, self.tolerance, len(edges))
        track.lower[:], track.upper[:] = self.lower, self.upper
        track.add(np.array([candidate_counts]), np.array([baseline_counts]))
        shift, n_candidate, n_baseline = (float(x[0]) for x in track.shift())
        p_value = self.min_p_value
        if n_candidate > 0 and n_baseline > 0:
            p_now = cdf.always_valid_p_value(shift, n_baseline, n_candidate, self.tolerance)
            p_value = min(p_value, p_now)
        return replace(
            self,
            candidate=candidate,
            baseline=baseline,
            lower=float(track.lower[0]),
            upper=float(track.upper[0]),
            min_p_value=p_value,
        )

    def verdict(self) -> Verdict:
        config = self.config
        shift, n_candidate, n_baseline = _shift(self.candidate, self.baseline)
        counts = {
            "candidate_samples": n_candidate,
            "baseline_samples": n_baseline,
            "min_samples": config.min_samples,
        }
        if n_candidate == 0:
            note = (
                "the metrics source gives no latency histogram"
                if not self.candidate and not self.baseline
                else "no candidate requests yet"
            )
            return Verdict.no_data(
                config, allowed=self.tolerance, unit="shift", counts=counts, note=note
            )
        failed = self.lower > self.tolerance
        passed = self.upper < self.tolerance and n_candidate >= config.min_samples
        outcome = Outcome.FAIL if failed else Outcome.PASS if passed else Outcome.INCONCLUSIVE
        note = ""
        if outcome is Outcome.INCONCLUSIVE and n_baseline == 0:
            note = "no baseline traffic in this stage to compare with"
        interval, crossed = ordered_interval(self.lower, self.upper)
        note = join_notes(note, crossed)
        extra: dict[str, float | None] = {}
        for name, q in QUANTILES:
            extra[f"candidate_{name}"] = _quantile(self.candidate, q)
            extra[f"baseline_{name}"] = _quantile(self.baseline, q)
        return Verdict(
            gate=config.key,
            outcome=outcome,
            estimate=shift,
            interval=interval,
            allowed=self.tolerance,
            e_value=None,
            p_value=self.min_p_value,
            alpha=config.alpha,
            counts=counts,
            metric=config.metric,
            unit="shift",
            note=note,
            extra=extra,
        )


def _shift(
    candidate: tuple[tuple[float, int], ...], baseline: tuple[tuple[float, int], ...]
) -> tuple[float, int, int]:
    """(D_t, candidate samples, baseline samples) at the edges both histograms share."""
    n_candidate = max((c for _, c in candidate), default=0)
    n_baseline = max((c for _, c in baseline), default=0)
    edges, candidate_counts, baseline_counts = _aligned(candidate, baseline)
    if not edges:
        return 0.0, n_candidate, n_baseline
    candidate_cdf, _ = cdf.cdf_at_edges(np.array(candidate_counts, dtype=np.float64))
    baseline_cdf, _ = cdf.cdf_at_edges(np.array(baseline_counts, dtype=np.float64))
    return float(cdf.slower_shift(baseline_cdf, candidate_cdf)), n_candidate, n_baseline


def _aligned(
    candidate: tuple[tuple[float, int], ...], baseline: tuple[tuple[float, int], ...]
) -> tuple[list[float], list[int], list[int]]:
    """The edges both histograms have, with each one's cumulative counts there."""
    base = dict(baseline)
    common = [(edge, count, base[edge]) for edge, count in candidate if edge in base]
    return [e for e, _, _ in common], [c for _, c, _ in common], [b for _, _, b in common]


def _added(
    total: tuple[tuple[float, int], ...], more: tuple[tuple[float, int], ...]
) -> tuple[tuple[float, int], ...]:
    """Add one look's histogram to the stage's; the edges are the first ones seen."""
    if not more:
        return total
    if not total:
        return tuple(sorted((float(e), int(c)) for e, c in more))
    extra = dict(more)
    return tuple((edge, count + int(extra.get(edge, 0))) for edge, count in total)


def _quantile(histogram: tuple[tuple[float, int], ...], q: float) -> float | None:
    """The upper edge of the bucket holding the q-quantile."""
    total = max((c for _, c in histogram), default=0)
    if total == 0:
        return None
    for edge, count in histogram:
        if count >= q * total:
            return edge
    return math.inf


def _histogram(rows: list[list[Any]]) -> tuple[tuple[float, int], ...]:
    return tuple((float(number_in(e) or 0.0), int(c)) for e, c in rows)
