"""The count test: is the candidate's event rate within its allowance of the baseline's?

Allowed: p_c <= max((1 + m) p_b, p_b + d), a relative margin m (`max_increase`)
and, when given, an absolute allowance d in rate units (`max_increase_abs`, or
`max_decrease` for accuracy, whose events are wrong predictions). In ratio terms
the candidate may reach r_allow = max(1 + m, 1 + d / p_b).

Two kinds of evidence, with the gate's alpha spent 80 % / 10 % / 10 %:

- the ratio, from the conditional test in `ratio.py` (80 %). It needs both
  versions serving at the same time, and cancels any drift common to both;
- each version's own rate, from `proportion.py` (10 % each). With an absolute
  allowance, r_allow depends on the unknown p_b, so these bracket it; and they
  decide on their own when the ratio cannot: when neither version has had an
  event yet (the candidate passes once its own rate is shown to be below the
  allowance), or when the stage gives the baseline no traffic at all (weight
  100 %), where the baseline's counts from before the stage stand in for it.

    FAIL  if the ratio's lower bound >= max(1 + m, 1 + d / L_b)
          or L_c > max((1 + m) U_b, U_b + d)   (only where the ratio is mute)
    PASS  if the ratio's upper bound <= max(1 + m, 1 + d / U_b)
          or U_c < max((1 + m) L_b, L_b + d)

with [L_c, U_c], [L_b, U_b] the rates' confidence sequences and d = 0 when no
absolute allowance is given. A FAIL therefore errs with probability at most
alpha. Every bound is a running intersection over the looks, so a decision
never flips back.

Unlike the ratio, a version's pooled rate is only comparable with the other's
when the share stays steady within the stage (the loop keeps it so): if the
share and the base rate moved together, pooled rates would mislead (Simpson).
So the rates fail a candidate only where the ratio is mute: when the stage has
no concurrent baseline, or the baseline has had no event at all (then
1 + d / L_b is unbounded and only the candidate's own rate can show it is
past the allowance).

`CountTrack` holds many independent stages at once (numpy rows), so the
benchmark runs thousands of simulated stages through exactly this code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates.stats import proportion, ratio
from gray.controller.gates.stats.special import Array

RATIO_SHARE = 0.8  # of a gate's alpha, for the ratio
RATE_SHARE = 0.1  # for each version's own rate


@dataclass(frozen=True)
class CountRule:
    """How much worse the candidate's rate may be, and the gate's error budget."""

    alpha: float
    max_increase: float = 0.0
    max_increase_abs: float | None = None

    @property
    def margin_ratio(self) -> float:
        return 1.0 + self.max_increase

    @property
    def has_allowance(self) -> bool:
        return self.max_increase_abs is not None

    @property
    def allowance(self) -> float:
        return float(self.max_increase_abs or 0.0)

    @property
    def ratio_alpha(self) -> float:
        return self.alpha * RATIO_SHARE

    @property
    def rate_alpha(self) -> float:
        return self.alpha * RATE_SHARE

    @property
    def grid(self) -> ratio.RatioGrid:
        return ratio.ratio_grid(self.margin_ratio)


class CountTrack:
    """Everything a count gate accumulates, for `runs` independent stages (rows).

    `reference_events` / `reference_exposure`: the baseline's counts from before
    the stage, used for its rate only while the stage has given it no traffic.
    """

    def __init__(
        self,
        rule: CountRule,
        runs: int = 1,
        reference_events: ArrayLike = 0,
        reference_exposure: ArrayLike = 0,
    ) -> None:
        self.rule = rule
        self.reference_events = np.broadcast_to(np.asarray(reference_events, float), (runs,))
        self.reference_exposure = np.broadcast_to(np.asarray(reference_exposure, float), (runs,))
        grid = rule.grid
        self.loglik = np.zeros((runs, grid.size))
        self.lower_index = np.full(runs, -1, dtype=np.int64)
        self.upper_index = np.full(runs, grid.size, dtype=np.int64)
        self.max_log_e = np.full(runs, -np.inf)
        self.log_e = np.zeros(runs)
        self.candidate_events = np.zeros(runs)
        self.candidate_exposure = np.zeros(runs)
        self.baseline_events = np.zeros(runs)
        self.baseline_exposure = np.zeros(runs)
        self.candidate_rate_bounds = (np.zeros(runs), np.ones(runs))
        self.baseline_rate_bounds = (np.zeros(runs), np.ones(runs))

    @property
    def runs(self) -> int:
        return int(self.loglik.shape[0])

    def add(
        self,
        candidate_events: ArrayLike,
        candidate_exposure: ArrayLike,
        baseline_events: ArrayLike,
        baseline_exposure: ArrayLike,
    ) -> None:
        """One look's increments (events and exposures per version, one entry per row)."""
        rule, grid = self.rule, self.rule.grid
        c = np.broadcast_to(np.asarray(candidate_events, dtype=np.float64), (self.runs,))
        nc = np.broadcast_to(np.asarray(candidate_exposure, dtype=np.float64), (self.runs,))
        b = np.broadcast_to(np.asarray(baseline_events, dtype=np.float64), (self.runs,))
        nb = np.broadcast_to(np.asarray(baseline_exposure, dtype=np.float64), (self.runs,))
        self.loglik = ratio.add_look(self.loglik, grid, c, b, nc, nb)
        had_baseline = self.baseline_exposure > 0
        self.candidate_events = self.candidate_events + c
        self.candidate_exposure = self.candidate_exposure + nc
        self.baseline_events = self.baseline_events + b
        self.baseline_exposure = self.baseline_exposure + nb
        self.candidate_rate_bounds = _narrowed(
            self.candidate_rate_bounds,
            proportion.confidence_bounds(
                self.candidate_events, self.candidate_exposure, rule.rate_alpha
            ),
        )
        self._update_baseline_rate(had_baseline)
        threshold = math.log(1.0 / rule.ratio_alpha)
        log_up = ratio.log_evidence_up(self.loglik, grid)
        log_down = ratio.log_evidence_down(self.loglik, grid)
        self.lower_index = np.maximum(self.lower_index, ratio.lower_index(log_up, threshold))
        self.upper_index = np.minimum(self.upper_index, ratio.upper_index(log_down, threshold))
        self.log_e = ratio.prefix_min(log_up, self.fail_index())
        self.max_log_e = np.maximum(self.max_log_e, self.log_e)

    def _update_baseline_rate(self, had_baseline: Array) -> None:
        """The baseline's rate bounds: from the stage's own traffic once it has any,
        from the reference counts while it has none."""
        concurrent = self.baseline_exposure > 0
        events = np.where(concurrent, self.baseline_events, self.reference_events)
        exposure = np.where(concurrent, self.baseline_exposure, self.reference_exposure)
        current = proportion.confidence_bounds(events, exposure, self.rule.rate_alpha)
        # The first look with concurrent traffic starts a new sequence: forget the reference.
        fresh = concurrent & ~had_baseline
        previous = (
            np.where(fresh, 0.0, self.baseline_rate_bounds[0]),
            np.where(fresh, 1.0, self.baseline_rate_bounds[1]),
        )
        self.baseline_rate_bounds = _narrowed(previous, current)

    @property
    def uses_reference(self) -> Array:
        """Rows whose baseline rate comes from before the stage (no concurrent traffic)."""
        return (self.baseline_exposure <= 0) & (self.reference_exposure > 0)

    # --- the allowance in ratio terms ------------------------------------------------

    def fail_ratio(self) -> Array:
        """The ratio the lower bound must reach to FAIL: max(1 + m, 1 + d / L_b)."""
        return self._allowed_ratio(self.baseline_rate_bounds[0])

    def pass_ratio(self) -> Array:
        """The ratio the upper bound must stay under to PASS: max(1 + m, 1 + d / U_b)."""
        return self._allowed_ratio(self.baseline_rate_bounds[1])

    def _allowed_ratio(self, baseline_rate: Array) -> Array:
        relative = np.full(self.runs, self.rule.margin_ratio)
        if not self.rule.has_allowance:
            return relative
        d = self.rule.allowance
        with np.errstate(divide="ignore"):
            absolute = np.where(baseline_rate > 0, 1.0 + d / baseline_rate, np.inf)
        return np.maximum(relative, absolute)

    def fail_index(self) -> Array:
        """First grid index at or above the FAIL ratio (grid size when it is above the grid)."""
        grid = self.rule.grid
        if not self.rule.has_allowance:
            return np.full(self.runs, grid.anchor, dtype=np.int64)
        with np.errstate(divide="ignore"):
            target = np.log(self.fail_ratio()) - 1e-12
        return np.searchsorted(grid.log_ratio, target, side="left").astype(np.int64)

    def pass_index(self) -> Array:
        """Last grid index at or below the PASS ratio."""
        grid = self.rule.grid
        if not self.rule.has_allowance:
            return np.full(self.runs, grid.anchor, dtype=np.int64)
        with np.errstate(divide="ignore"):
            target = np.log(self.pass_ratio()) + 1e-12
        return np.searchsorted(grid.log_ratio, target, side="right").astype(np.int64) - 1

    # --- decisions ---------------------------------------------------------------------

    def fails(self) -> Array:
        """Rows whose candidate is shown to exceed its allowance."""
        by_ratio = self.lower_index >= self.fail_index()
        m, d = self.rule.max_increase, self.rule.allowance
        candidate_low = self.candidate_rate_bounds[0]
        baseline_high = self.baseline_rate_bounds[1]
        by_rates = candidate_low > np.maximum((1.0 + m) * baseline_high, baseline_high + d)
        # The rates alone assume a steady share within the stage; they may fail a candidate
        # only where the ratio cannot: no concurrent baseline, or no baseline event at all.
        ratio_is_mute = self.uses_reference | (self.baseline_events <= 0)
        return by_ratio | (by_rates & ratio_is_mute)

    def passes(self) -> Array:
        """Rows whose candidate is shown to be within its allowance (before min_samples)."""
        by_ratio = self.upper_index <= self.pass_index()
        m, d = self.rule.max_increase, self.rule.allowance
        candidate_high = self.candidate_rate_bounds[1]
        baseline_low = self.baseline_rate_bounds[0]
        by_rates = candidate_high < np.maximum((1.0 + m) * baseline_low, baseline_low + d)
        return by_ratio | by_rates

    # --- numbers for the verdict ---------------------------------------------------------

    def ratio_bounds(self) -> tuple[Array, Array]:
        grid = self.rule.grid
        ratios = np.concatenate([[0.0], grid.ratio, [np.inf]])
        return ratios[self.lower_index + 1], ratios[self.upper_index + 1]

    def ratio_estimate(self) -> Array:
        """(c / n_c) / (b / n_b) over the stage; nan where undefined."""
        with np.errstate(divide="ignore", invalid="ignore"):
            candidate = self.candidate_events / self.candidate_exposure
            baseline = self.baseline_events / self.baseline_exposure
            return candidate / baseline

    def difference_bounds(self) -> tuple[Array, Array]:
        """Bounds on p_c - p_b: from the ratio and the baseline rate, and from both rates."""
        lo_r, hi_r = self.ratio_bounds()
        base_lo, base_hi = self.baseline_rate_bounds
        cand_lo, cand_hi = self.candidate_rate_bounds
        with np.errstate(invalid="ignore"):
            # p_b (r - 1) over the box [base_lo, base_hi] x [lo_r, hi_r].
            low_from_ratio = np.where(lo_r >= 1.0, base_lo, base_hi) * (lo_r - 1.0)
            high_from_ratio = np.where(hi_r >= 1.0, base_hi, base_lo) * (hi_r - 1.0)
        high_from_ratio = np.where(np.isnan(high_from_ratio), np.inf, high_from_ratio)
        low = np.maximum(low_from_ratio, cand_lo - base_hi)
        high = np.minimum(high_from_ratio, cand_hi - base_lo)
        return low, high


def _narrowed(previous: tuple[Array, Array], current: tuple[Array, Array]) -> tuple[Array, Array]:
    """Running intersection of confidence sequences: still valid, never wider."""
    return np.maximum(previous[0], current[0]), np.minimum(previous[1], current[1])
