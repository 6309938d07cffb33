"""The count test: is the candidate's event rate within its allowance of the baseline's?

Allowed: p_c <= max((1 + m) p_b, p_b + d), a relative margin m (`max_increase`)
and, when given, an absolute allowance d in rate units (`max_increase_abs`, or
`max_decrease` for accuracy, whose events are wrong predictions). In ratio terms
the candidate may reach r_allow = max(1 + m, 1 + d / p_b).

Evidence on the ratio comes from the conditional test in `ratio.py`. With an
absolute allowance, r_allow depends on the unknown baseline rate, so a
confidence sequence on each version's own rate (`proportion.py`) brackets it;
those rates also decide on their own when the ratio says nothing (neither
version has had an event yet: the candidate passes once its own rate is shown
to be below the allowance). Alpha is then spent as 80 % on the ratio and 10 %
on each version's rate, so that FAIL still errs with probability at most alpha:

    FAIL  if the ratio's lower bound >= max(1 + m, 1 + d / L_b)
          or (d given) L_c > max((1 + m) U_b, U_b + d)
    PASS  if the ratio's upper bound <= max(1 + m, 1 + d / U_b)
          or (d given) U_c < max((1 + m) L_b, L_b + d)

where [L_c, U_c] and [L_b, U_b] are the rates' confidence sequences. Every bound
is a running intersection over the looks, so a decision never flips back.

`CountTrack` holds many independent stages at once (numpy rows), so the
benchmark runs thousands of simulated stages through exactly this code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates import proportion, ratio
from gray.controller.gates.special import Array

RATIO_SHARE_WITH_ALLOWANCE = 0.8  # of the gate's alpha, when an absolute allowance is given
RATE_SHARE_WITH_ALLOWANCE = 0.1  # for each version's own rate


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
    def ratio_alpha(self) -> float:
        return self.alpha * (RATIO_SHARE_WITH_ALLOWANCE if self.has_allowance else 1.0)

    @property
    def rate_alpha(self) -> float:
        return self.alpha * RATE_SHARE_WITH_ALLOWANCE

    @property
    def grid(self) -> ratio.RatioGrid:
        return ratio.ratio_grid(self.margin_ratio)


class CountTrack:
    """Everything a count gate accumulates, for `runs` independent stages (rows)."""

    def __init__(self, rule: CountRule, runs: int = 1) -> None:
        self.rule = rule
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
        self.candidate_events = self.candidate_events + c
        self.candidate_exposure = self.candidate_exposure + nc
        self.baseline_events = self.baseline_events + b
        self.baseline_exposure = self.baseline_exposure + nb
        if rule.has_allowance:
            self.candidate_rate_bounds = _narrowed(
                self.candidate_rate_bounds,
                proportion.confidence_bounds(
                    self.candidate_events, self.candidate_exposure, rule.rate_alpha
                ),
            )
            self.baseline_rate_bounds = _narrowed(
                self.baseline_rate_bounds,
                proportion.confidence_bounds(
                    self.baseline_events, self.baseline_exposure, rule.rate_alpha
                ),
            )
        threshold = math.log(1.0 / rule.ratio_alpha)
        log_up = ratio.log_evidence_up(self.loglik, grid)
        log_down = ratio.log_evidence_down(self.loglik, grid)
        self.lower_index = np.maximum(self.lower_index, ratio.lower_index(log_up, threshold))
        self.upper_index = np.minimum(self.upper_index, ratio.upper_index(log_down, threshold))
        self.log_e = ratio.prefix_min(log_up, self.fail_index())
        self.max_log_e = np.maximum(self.max_log_e, self.log_e)

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
        d = float(self.rule.max_increase_abs or 0.0)
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
        if not self.rule.has_allowance:
            return by_ratio
        m, d = self.rule.max_increase, float(self.rule.max_increase_abs or 0.0)
        candidate_low = self.candidate_rate_bounds[0]
        baseline_high = self.baseline_rate_bounds[1]
        by_rates = candidate_low > np.maximum((1.0 + m) * baseline_high, baseline_high + d)
        return by_ratio | by_rates

    def passes(self) -> Array:
        """Rows whose candidate is shown to be within its allowance (before min_samples)."""
        by_ratio = self.upper_index <= self.pass_index()
        if not self.rule.has_allowance:
            return by_ratio
        m, d = self.rule.max_increase, float(self.rule.max_increase_abs or 0.0)
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
