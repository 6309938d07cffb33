"""The rate gates' test when events cluster by routing key: hash groups are the units.

gray routes by a hash of the routing key, so every request of a key goes to the
same version, and a key that fails often (one integration's bad payload, a bot
replaying a request) puts a streak of failures on whichever version it landed
on. The unit that was randomised is the key, not the request: a per-request
test reads such a streak as hundreds of independent events. The endpoint counts
requests and events per hash group of the key (a fixed set of buckets, so a key
never leaves its group); the groups hold disjoint keys, each assigned to a
version independently, so their contributions are independent whatever the
keys do inside them.

For a null ratio r (candidate rate / baseline rate <= r), with the candidate's
and baseline's events and exposures E_c, N_c, E_b, N_b over the stage and
k = N_c / N_b, the statistic is

    S(r) = E_c - r k E_b,

the candidate's events beyond what r times the baseline's rate predicts for
its exposures. It is a sum over groups of X_g(r) = e_gc - r k e_gb -
r p_b (n_gc - k n_gb) (p_b = E_b / N_b; the last term sums to zero and makes
X_g the linearised contribution, as in a cluster-robust sandwich variance), so
its variance is estimated across the G groups:

    V(r) = G / (G - 1) sum_g (X_g(r) - mean X(r))^2,

never less than the independent-events value E_c + r^2 k^2 E_b, nor than the
variance the null implies given all the events, r k (E_c + E_b) (the per-request
test's conditional binomial: without it, a stage with no baseline event yet
would look as if every large ratio were ruled out). For an
absolute allowance d (the candidate's rate may exceed the baseline's by d)
the statistic is S(d) = E_c - k E_b - d N_c with X_g(d) likewise.

Time-uniformity: the one-sided normal mixture of Robbins (1970), as the
asymptotic confidence sequences of Waudby-Smith, Arbour, Sinha, Kennedy &
Ramdas (Annals of Statistics 52(6), 2024) use it with a variance estimated from the data:

    M(S, V) = 2 sqrt(rho / (V + rho)) exp(x^2 / 2) Phi(x),  x = S / sqrt(V + rho),

the mixture over drifts lambda >= 0 (half-normal, precision rho) of
exp(lambda S - lambda^2 V / 2). When S is approximately Gaussian with variance
process V (a sum over many independent groups) and its increments are
independent, M is a nonnegative supermartingale under any r at or below the
null, so rejecting once M >= 1 / alpha errs with probability at most alpha
over all looks (Ville's inequality); a key whose behaviour persists through the
stage makes the increments positively correlated with the past, which keeps the
normalised path smoother than Brownian motion's (the suite checks the
false-alarm rate of exactly that case by simulation). The guarantee is
asymptotic in the number of groups: with few dominant groups S / sqrt(V)
cannot exceed sqrt(dominant groups), so a handful of heavy keys cannot fail a
good candidate. The test uses exp(x^2/2) Phi(x) >= exp(x^2/2) - 1/2 for
x >= 0, a lower bound of M, so it is never less conservative than M itself.

Decisions, as in `counts.py` but from these bounds:

    FAIL  if "ratio <= 1 + m" is rejected, and, with an absolute allowance d,
          "difference <= d" is rejected too (each at the gate's alpha: an
          intersection-union test of "within max((1 + m) p_b, p_b + d)");
    PASS  if "ratio >= 1 + m" or "difference >= d" is rejected.

The ratio's and the difference's confidence sequences come from testing every
point of a grid, and are running intersections, so a decision never flips
back. `ClusteredTrack` holds many stages at once (numpy rows), so the benchmark
runs the code the gates run.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates.stats.counts import CountRule
from gray.controller.gates.stats.special import Array

# Precision rho of the half-normal mixture over the drift per unit of variance: its
# scale 1 / sqrt(rho) = 0.3 is the drift of a regression to about twice a rate
# margin's allowed ratio at an even split, the regressions a rate gate is for.
MIXTURE_PRECISION = 11.0
# The difference grid: 0 and +-10^-6 .. 1 in rate units, about 1.5 % apart.
DIFFERENCE_POINTS = 240


@lru_cache(maxsize=64)
def difference_grid(allowance: float) -> Array:
    """Differences of rates the difference's confidence sequence is read at, ascending,
    the allowance among them (so a FAIL at it is tested exactly)."""
    magnitudes = np.geomspace(1e-6, 1.0, DIFFERENCE_POINTS)
    return np.unique(np.concatenate([-magnitudes[::-1], [0.0, allowance], magnitudes]))


def log_evidence(statistic: Array, variance: Array, rho: float = MIXTURE_PRECISION) -> Array:
    """log of a lower bound of the one-sided normal-mixture e-value M(S, V) (-inf for S <= 0
    where M is below 1 and never rejects)."""
    total = variance + rho
    x = statistic / np.sqrt(total)
    half_square = 0.5 * np.square(np.maximum(x, 0.0))
    # log(e^{h} - 1/2) = h + log1p(-e^{-h} / 2), stable for large h.
    log_mass = half_square + np.log1p(-0.5 * np.exp(-half_square))
    value = math.log(2.0) + 0.5 * (math.log(rho) - np.log(total)) + log_mass
    return np.where(x > 0, value, -np.inf)


def squared_boundary(variance: Array, alpha: float, rho: float = MIXTURE_PRECISION) -> Array:
    """B such that `log_evidence` reaches log(1 / alpha) exactly where S > 0 and S^2 >= B.

    log(e^h - 1/2) is increasing in h = S^2 / (2 (V + rho)), so the bound reaches
    log(1 / alpha) when S^2 >= 2 (V + rho) log(sqrt((V + rho) / rho) / (2 alpha) + 1/2).
    """
    total = variance + rho
    return 2.0 * total * np.log(np.sqrt(total / rho) / (2.0 * alpha) + 0.5)


class ClusteredTrack:
    """Per-group cumulative counts of `runs` independent stages (rows) and their decisions.

    Each `add` takes one look's increments per group, shaped (runs, groups).
    """

    def __init__(self, rule: CountRule, runs: int, groups: int) -> None:
        if groups < 2:
            raise ValueError(f"the clustered test needs at least 2 groups, got {groups}")
        self.rule = rule
        shape = (runs, groups)
        self.candidate_events = np.zeros(shape)
        self.candidate_exposure = np.zeros(shape)
        self.baseline_events = np.zeros(shape)
        self.baseline_exposure = np.zeros(shape)
        ratio_points = rule.grid.size
        diff_points = difference_grid(rule.allowance).size
        self.lower_index = np.full(runs, -1, dtype=np.int64)
        self.upper_index = np.full(runs, ratio_points, dtype=np.int64)
        self.difference_lower_index = np.full(runs, -1, dtype=np.int64)
        self.difference_upper_index = np.full(runs, diff_points, dtype=np.int64)
        self.log_e = np.zeros(runs)
        self.max_log_e = np.full(runs, -np.inf)

    @property
    def runs(self) -> int:
        return int(self.candidate_events.shape[0])

    @property
    def groups(self) -> int:
        return int(self.candidate_events.shape[1])

    def add(
        self,
        candidate_events: ArrayLike,
        candidate_exposure: ArrayLike,
        baseline_events: ArrayLike,
        baseline_exposure: ArrayLike,
    ) -> None:
        """One look's increments per group, each (runs, groups)."""
        shape = self.candidate_events.shape
        self.candidate_events = self.candidate_events + np.broadcast_to(candidate_events, shape)
        self.candidate_exposure = self.candidate_exposure + np.broadcast_to(
            candidate_exposure, shape
        )
        self.baseline_events = self.baseline_events + np.broadcast_to(baseline_events, shape)
        self.baseline_exposure = self.baseline_exposure + np.broadcast_to(baseline_exposure, shape)
        self._update_bounds()

    # --- the statistics --------------------------------------------------------------

    def _parts(self) -> tuple[Array, Array, Array, Array, Array]:
        """Per-group (a, b, c) with X_g = a_g - point * b_g for the ratio (c the exposures),
        and the totals E_c and k E_b."""
        n_c = self.candidate_exposure.sum(axis=1)
        n_b = self.baseline_exposure.sum(axis=1)
        e_b = self.baseline_events.sum(axis=1)
        k = np.divide(n_c, n_b, out=np.zeros_like(n_c), where=n_b > 0)
        p_b = np.divide(e_b, n_b, out=np.zeros_like(e_b), where=n_b > 0)
        spread = self.candidate_exposure - k[:, None] * self.baseline_exposure
        scaled_baseline = k[:, None] * self.baseline_events
        # Under the ratio null r: X_g = e_gc - r (k e_gb + p_b (n_gc - k n_gb)).
        ratio_b = scaled_baseline + p_b[:, None] * spread
        return self.candidate_events, ratio_b, spread, k, p_b

    def _update_bounds(self) -> None:
        alpha = self.rule.alpha
        a, ratio_b, spread, k, p_b = self._parts()
        e_c = a.sum(axis=1)
        e_b = self.baseline_events.sum(axis=1)
        concurrent = self.baseline_exposure.sum(axis=1) > 0
        grid = self.rule.grid.ratio
        # Ratio: X_g(r) = a_g - r b_g; S(r) = E_c - r k E_b.
        s, v = _linear_family(a, ratio_b, grid)
        # Never below the independent-events variance, and never below the variance the
        # null itself implies: given all E_c + E_b events, the candidate's count under
        # ratio r is binomial, so S(r) has variance r k (E_c + E_b). (With no baseline
        # event yet, the plug-in value alone would make every large r look rejected.)
        rk = grid * k[:, None]
        independent = e_c[:, None] + np.square(rk) * e_b[:, None]
        implied = rk * (e_c + e_b)[:, None]
        v = np.maximum(v, np.maximum(independent, implied))
        up, down = _rejected(s, v, alpha, concurrent)
        self.lower_index = np.maximum(self.lower_index, _last_of_prefix(up))
        self.upper_index = np.minimum(self.upper_index, _first_of_suffix(down))
        anchor = self.rule.grid.anchor
        at_margin = log_evidence(s[:, anchor], v[:, anchor])
        self.log_e = np.where(concurrent, at_margin, -np.inf)
        if not self.rule.has_allowance:
            self.max_log_e = np.maximum(self.max_log_e, self.log_e)
        else:
            self._update_difference_bounds(a, spread, k, p_b, concurrent)

    def _update_difference_bounds(
        self, a: Array, spread: Array, k: Array, p_b: Array, concurrent: Array
    ) -> None:
        """The difference's confidence sequence, and the FAIL evidence at the allowance."""
        # X_g(d) = (e_gc - k e_gb - p_b spread_g) - d n_gc; S(d) = E_c - k E_b - d N_c.
        diffs = difference_grid(self.rule.allowance)
        base = a - k[:, None] * self.baseline_events - p_b[:, None] * spread
        s, v = _linear_family(base, self.candidate_exposure, diffs)
        e_c, e_b = a.sum(axis=1), self.baseline_events.sum(axis=1)
        # As for the ratio: the candidate's count under the null has at least the variance
        # of its expected count k E_b + d N_c, whatever was observed.
        implied = (k * e_b)[:, None] + diffs[None, :] * self.candidate_exposure.sum(axis=1)[:, None]
        candidate = np.maximum(e_c[:, None], implied)
        v = np.maximum(v, candidate + (np.square(k) * e_b)[:, None])
        up, down = _rejected(s, v, self.rule.alpha, concurrent)
        self.difference_lower_index = np.maximum(self.difference_lower_index, _last_of_prefix(up))
        self.difference_upper_index = np.minimum(
            self.difference_upper_index, _first_of_suffix(down)
        )
        at = int(np.searchsorted(diffs, self.rule.allowance))
        at_allowance = np.where(concurrent, log_evidence(s[:, at], v[:, at]), -np.inf)
        self.log_e = np.minimum(self.log_e, at_allowance)
        self.max_log_e = np.maximum(self.max_log_e, self.log_e)

    # --- decisions -------------------------------------------------------------------

    def fails(self) -> Array:
        ratio_fails = self.lower_index >= self.rule.grid.anchor
        if not self.rule.has_allowance:
            return ratio_fails
        return ratio_fails & (self.difference_bounds()[0] >= self.rule.allowance)

    def passes(self) -> Array:
        ratio_passes = self.upper_index <= self.rule.grid.anchor
        if not self.rule.has_allowance:
            return ratio_passes
        return ratio_passes | (self.difference_bounds()[1] <= self.rule.allowance)

    # --- numbers for the verdict -------------------------------------------------------

    def ratio_bounds(self) -> tuple[Array, Array]:
        ratios = np.concatenate([[0.0], self.rule.grid.ratio, [np.inf]])
        return ratios[self.lower_index + 1], ratios[self.upper_index + 1]

    def difference_bounds(self) -> tuple[Array, Array]:
        diffs = np.concatenate([[-1.0], difference_grid(self.rule.allowance), [1.0]])
        return diffs[self.difference_lower_index + 1], diffs[self.difference_upper_index + 1]

    def totals(self) -> tuple[Array, Array, Array, Array]:
        """(E_c, N_c, E_b, N_b) over the stage."""
        return (
            self.candidate_events.sum(axis=1),
            self.candidate_exposure.sum(axis=1),
            self.baseline_events.sum(axis=1),
            self.baseline_exposure.sum(axis=1),
        )


def _rejected(
    statistic: Array, variance: Array, alpha: float, concurrent: Array
) -> tuple[Array, Array]:
    """(null below rejected, null above rejected) at every point; nothing without a
    concurrent baseline."""
    far = np.square(statistic) >= squared_boundary(variance, alpha)
    far &= concurrent[:, None]
    return far & (statistic > 0), far & (statistic < 0)


def _linear_family(a: Array, b: Array, points: Array) -> tuple[Array, Array]:
    """For X_g(point) = a_g - point * b_g: S = sum_g X_g and the across-group variance
    G/(G-1) sum_g (X_g - mean)^2 at every point, each (runs, points)."""
    groups = a.shape[1]
    sum_a, sum_b = a.sum(axis=1), b.sum(axis=1)
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    saa = np.einsum("rg,rg->r", da, da)
    sab = np.einsum("rg,rg->r", da, db)
    sbb = np.einsum("rg,rg->r", db, db)
    p = points[None, :]
    statistic = sum_a[:, None] - p * sum_b[:, None]
    spread = saa[:, None] - 2.0 * p * sab[:, None] + np.square(p) * sbb[:, None]
    return statistic, np.maximum(spread, 0.0) * groups / (groups - 1)


def _last_of_prefix(rejected: Array) -> Array:
    """Index of the last point of the unbroken rejected run from the bottom (-1: none)."""
    return np.sum(np.cumprod(rejected, axis=-1), axis=-1) - 1


def _first_of_suffix(rejected: Array) -> Array:
    """Index of the first point of the unbroken rejected run from the top (size: none)."""
    run = np.sum(np.cumprod(rejected[..., ::-1], axis=-1), axis=-1)
    return rejected.shape[-1] - run
