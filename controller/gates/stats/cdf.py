"""Time-uniform confidence bands for a distribution function, and the shift between two.

Howard & Ramdas ("Sequential estimation of quantiles with applications to
A/B-testing and best-arm identification", Bernoulli 2022, Theorem 2): for i.i.d.
samples from any distribution F, with probability at least 1 - alpha,

    sup_x |F_t(x) - F(x)| <= A sqrt((log(1 + log t) + C) / t)   for every t >= 1 at once,

with A = 0.85 and C chosen for alpha (about 0.8 log(1612 / alpha)). A histogram
with fixed edges is such a sample seen only at its edges, and the band holds at
every x, so in particular at the edges.

The latency-distribution gate watches D = sup_x (F_baseline(x) - F_candidate(x)),
how far the candidate's distribution function lies below the baseline's anywhere
(the candidate is slower there). With a band of level alpha/2 on each side,
|D_t - D| <= r_baseline + r_candidate for all t with probability 1 - alpha.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates.stats.special import Array

LEADING_CONSTANT = 0.85


@lru_cache(maxsize=256)
def band_constant(alpha: float, leading: float = LEADING_CONSTANT) -> float:
    """C such that the band A sqrt((log(1 + log t) + C) / t) fails with probability alpha.

    Theorem 2's error bound, 4 exp(-g C) (1 + 1 / ((g - 1) log eta)) with
    g = (2 / eta) (A - sqrt(2 (eta - 1) / C))^2, minimised over the epoch ratio eta,
    is decreasing in C; bisect for the C where it equals alpha.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    low, high = 0.5, 500.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if _crossing_probability(middle, leading) > alpha:
            low = middle
        else:
            high = middle
    return high


def _crossing_probability(constant: float, leading: float) -> float:
    eta_top = _largest_eta(constant, leading)
    if eta_top <= 1.0:
        return math.inf
    eta = 1.0 + np.geomspace(1e-6, eta_top - 1.0, 4000)
    slack = leading - np.sqrt(2.0 * (eta - 1.0) / constant)
    gamma_sq = 2.0 / eta * slack**2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bound = 4.0 * np.exp(-gamma_sq * constant) * (1.0 + 1.0 / ((gamma_sq - 1.0) * np.log(eta)))
    bound = np.where((gamma_sq > 1.0) & (slack > 0), bound, np.inf)
    return float(np.min(bound))


def _largest_eta(constant: float, leading: float) -> float:
    """The eta where sqrt(eta / 2) + sqrt(2 (eta - 1) / C) reaches A (bisection)."""
    low, high = 1.0, 2.0 * leading * leading
    for _ in range(100):
        middle = 0.5 * (low + high)
        if math.sqrt(middle / 2.0) + math.sqrt(2.0 * (middle - 1.0) / constant) < leading:
            low = middle
        else:
            high = middle
    return low


def band_radius(samples: ArrayLike, alpha: float) -> Array:
    """Half-width of the time-uniform band after `samples` draws (1 for none)."""
    t = np.asarray(samples, dtype=np.float64)
    constant = band_constant(alpha)
    safe = np.maximum(t, 1.0)
    radius = LEADING_CONSTANT * np.sqrt((np.log1p(np.log(safe)) + constant) / safe)
    return np.where(t >= 1.0, np.minimum(radius, 1.0), 1.0)


def cdf_at_edges(cumulative_counts: ArrayLike) -> tuple[Array, Array]:
    """(F at each edge, total) from cumulative histogram counts, edges ascending.

    The total is the largest cumulative count (the +inf edge); F is 0 for an empty one.
    """
    counts = np.asarray(cumulative_counts, dtype=np.float64)
    total = np.max(counts, axis=-1) if counts.shape[-1] else np.zeros(counts.shape[:-1])
    cdf = np.divide(counts, total[..., None], out=np.zeros_like(counts), where=total[..., None] > 0)
    return cdf, total


def slower_shift(baseline_cdf: Array, candidate_cdf: Array) -> Array:
    """D_t = max(0, max over edges of F_baseline - F_candidate)."""
    gap = baseline_cdf - candidate_cdf
    return np.maximum(0.0, np.max(gap, axis=-1)) if gap.shape[-1] else np.zeros(gap.shape[:-1])


def shift_interval(
    shift: ArrayLike, baseline_samples: ArrayLike, candidate_samples: ArrayLike, alpha: float
) -> tuple[Array, Array]:
    """Confidence bounds on D, each sample's band at alpha / 2."""
    width = band_radius(baseline_samples, alpha / 2) + band_radius(candidate_samples, alpha / 2)
    d = np.asarray(shift, dtype=np.float64)
    return np.clip(d - width, 0.0, 1.0), np.clip(d + width, 0.0, 1.0)


def always_valid_p_value(
    shift: float, baseline_samples: float, candidate_samples: float, tolerance: float
) -> float:
    """The smallest alpha at which the lower bound on D already exceeds `tolerance`.

    The bands are nested in alpha, so {p <= a} happens only if the level-a bands
    failed at some look: a p-value valid at every look at once. Solved for the
    band constant C first (the radius is monotone in it), then mapped to alpha.
    """
    if shift <= tolerance or baseline_samples < 1 or candidate_samples < 1:
        return 1.0
    room = shift - tolerance

    def width(constant: float) -> float:
        return sum(
            LEADING_CONSTANT * math.sqrt((math.log1p(math.log(t)) + constant) / t)
            for t in (baseline_samples, candidate_samples)
        )

    if width(0.0) >= room:
        return 1.0
    low, high = 0.0, 1.0
    while width(high) < room and high < 1e6:
        high *= 2.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        if width(middle) < room:
            low = middle
        else:
            high = middle
    # Each sample's band holds at alpha / 2, so alpha is twice one band's crossing chance.
    return min(1.0, 2.0 * _crossing_probability(low, LEADING_CONSTANT))


class ShiftTrack:
    """The latency-distribution test for `runs` independent stages (rows).

    Histograms are cumulative counts at shared edges (the last edge +inf), summed
    over the looks. The interval on D is the running intersection over looks.
    """

    def __init__(self, alpha: float, tolerance: float, edges: int, runs: int = 1) -> None:
        self.alpha = alpha
        self.tolerance = tolerance
        self.candidate = np.zeros((runs, edges))
        self.baseline = np.zeros((runs, edges))
        self.lower = np.zeros(runs)
        self.upper = np.ones(runs)

    def add(self, candidate_cumulative: ArrayLike, baseline_cumulative: ArrayLike) -> None:
        self.candidate = self.candidate + np.asarray(candidate_cumulative, dtype=np.float64)
        self.baseline = self.baseline + np.asarray(baseline_cumulative, dtype=np.float64)
        shift, n_candidate, n_baseline = self.shift()
        low, high = shift_interval(shift, n_baseline, n_candidate, self.alpha)
        both = (n_candidate > 0) & (n_baseline > 0)
        self.lower = np.where(both, np.maximum(self.lower, low), self.lower)
        self.upper = np.where(both, np.minimum(self.upper, high), self.upper)

    def shift(self) -> tuple[Array, Array, Array]:
        """(D_t, candidate samples, baseline samples) per row."""
        candidate_cdf, n_candidate = cdf_at_edges(self.candidate)
        baseline_cdf, n_baseline = cdf_at_edges(self.baseline)
        return slower_shift(baseline_cdf, candidate_cdf), n_candidate, n_baseline

    def fails(self) -> Array:
        return self.lower > self.tolerance

    def passes(self) -> Array:
        """Rows shown within tolerance (before the gate's min_samples)."""
        return self.upper < self.tolerance
