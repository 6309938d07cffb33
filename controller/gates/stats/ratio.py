"""Anytime-valid inference on the ratio r of two event rates (candidate / baseline).

Condition on the events: given that an event happened in a look where the
candidate had a share rho of the exposures (requests, labelled predictions),
it is the candidate's with probability theta = rho r / (rho r + 1 - rho)
(Lindon & Malek 2022; Lindon, Sanden & Shirikian, KDD 2022). Baseline rates
that drift over the day cancel out; only the ratio is left. rho is taken per
look from the exposures of that look, so a share that changes between looks
or stages is exact rather than averaged.

Because rho changes from look to look, the likelihood of r has no conjugate
prior. The mixture is therefore taken over a fixed grid of ratios (1/64 to
64, plus the margin itself), with weights from Lindon & Malek's Beta(k, k)
prior on the candidate's share of events under an even split. A discrete
mixture of likelihood ratios is itself a test martingale, so nothing is
approximated in the guarantee: the state is the log-likelihood at each grid
point, O(grid) numbers whatever the number of looks.

Two one-sided families of e-processes come out of it. For a null "r <= r_i"
the mixture over grid ratios above r_i (E_up[i]); every likelihood ratio in it
has mean at most 1 under any r <= r_i, so it is valid for the whole composite
null. Symmetrically E_down[i] for "r >= r_i". A lower confidence bound is the
largest r_i such that E_up rejects every grid point up to r_i at once (an
unbroken prefix, which makes the bound valid even though E_up need not be
monotone in i); the upper bound likewise from E_down. Each bound fails with
probability at most alpha, uniformly over all looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates.stats.special import Array, lbeta

# Grid in log r. 321 points give a 2.6 % step between neighbours.
GRID_LIMIT = math.log(64.0)
GRID_POINTS = 321
# Prior: Beta(k, k) on r / (1 + r), the candidate's share of events under an even split.
PRIOR_CONCENTRATION = 4.0


@dataclass(frozen=True)
class RatioGrid:
    """The grid of ratios, the prior weights and cached partial sums of them."""

    log_ratio: Array  # u_j = log r_j, ascending
    log_weight: Array  # log w_j, summing to 1 over the grid
    log_weight_above: Array  # log Σ_{k>j} w_k (-inf at the top)
    log_weight_below: Array  # log Σ_{k<j} w_k (-inf at the bottom)
    anchor: int  # index of the margin ratio r0 in the grid

    @property
    def ratio(self) -> Array:
        return np.exp(self.log_ratio)

    @property
    def size(self) -> int:
        return int(self.log_ratio.shape[0])


@lru_cache(maxsize=64)
def ratio_grid(margin_ratio: float) -> RatioGrid:
    """The grid for a gate whose allowed ratio is `margin_ratio` (it becomes a grid point)."""
    base = np.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_POINTS)
    anchor_u = math.log(margin_ratio)
    nearest = int(np.argmin(np.abs(base - anchor_u)))
    if abs(base[nearest] - anchor_u) > 1e-9:
        base = np.sort(np.append(base, anchor_u))
    else:
        base[nearest] = anchor_u
    anchor = int(np.argmin(np.abs(base - anchor_u)))
    log_weight = _log_prior_density(base) + np.log(_trapezoid_widths(base))
    log_weight -= np.logaddexp.reduce(log_weight)
    above = _suffix_logsumexp(log_weight)
    below = _prefix_logsumexp(log_weight)
    return RatioGrid(
        log_ratio=base,
        log_weight=log_weight,
        log_weight_above=np.append(above[1:], -np.inf),
        log_weight_below=np.insert(below[:-1], 0, -np.inf),
        anchor=anchor,
    )


def add_look(
    loglik: Array,
    grid: RatioGrid,
    candidate_events: ArrayLike,
    baseline_events: ArrayLike,
    candidate_exposure: ArrayLike,
    baseline_exposure: ArrayLike,
) -> Array:
    """The log-likelihood on the grid after one more look.

    Per look, with rho the candidate's share of that look's exposures, the events
    contribute c log theta(r) + b log(1 - theta(r)); up to terms free of r that is
    c u - (c + b) log(1 - rho + rho e^u). The free terms cancel in every ratio.
    """
    c = np.asarray(candidate_events, dtype=np.float64)[..., None]
    b = np.asarray(baseline_events, dtype=np.float64)[..., None]
    nc = np.asarray(candidate_exposure, dtype=np.float64)[..., None]
    nb = np.asarray(baseline_exposure, dtype=np.float64)[..., None]
    total = nc + nb
    rho = np.divide(nc, total, out=np.zeros_like(total), where=total > 0)
    u = grid.log_ratio
    step = c * u - (c + b) * np.log1p(rho * np.expm1(u))
    updated = loglik + step
    # Only differences across the grid matter; keep the numbers near zero.
    return updated - np.max(updated, axis=-1, keepdims=True)


def log_evidence_up(loglik: Array, grid: RatioGrid) -> Array:
    """log E_up[i]: evidence against r <= r_i, from the grid ratios above r_i.

    The mixture is the trapezoid rule for the one-sided integral from u_i up, so
    r_i itself enters with half its weight (its likelihood ratio is exactly 1).
    """
    joint = grid.log_weight + loglik
    above = _suffix_logsumexp(joint)
    strictly_above = _shift_left(above)
    half_here = grid.log_weight - math.log(2.0)
    numerator = np.logaddexp(strictly_above, half_here + loglik)
    denominator = np.logaddexp(grid.log_weight_above, half_here)
    with np.errstate(invalid="ignore"):
        out = numerator - denominator - loglik
    return np.where(np.isfinite(grid.log_weight_above) & np.isfinite(out), out, -np.inf)


def log_evidence_down(loglik: Array, grid: RatioGrid) -> Array:
    """log E_down[i]: evidence against r >= r_i, from the grid ratios below r_i."""
    joint = grid.log_weight + loglik
    below = _prefix_logsumexp(joint)
    strictly_below = _shift_right(below)
    half_here = grid.log_weight - math.log(2.0)
    numerator = np.logaddexp(strictly_below, half_here + loglik)
    denominator = np.logaddexp(grid.log_weight_below, half_here)
    with np.errstate(invalid="ignore"):
        out = numerator - denominator - loglik
    return np.where(np.isfinite(grid.log_weight_below) & np.isfinite(out), out, -np.inf)


def lower_index(log_up: Array, log_threshold: float) -> Array:
    """Index of the largest grid ratio in the unbroken rejected prefix (-1 when none)."""
    rejected = log_up >= log_threshold
    return np.sum(np.cumprod(rejected, axis=-1), axis=-1) - 1


def upper_index(log_down: Array, log_threshold: float) -> Array:
    """Index of the smallest grid ratio in the unbroken rejected suffix (size when none)."""
    rejected = log_down >= log_threshold
    run = np.sum(np.cumprod(rejected[..., ::-1], axis=-1), axis=-1)
    return log_down.shape[-1] - run


def prefix_min(values: Array, last: ArrayLike) -> Array:
    """min(values[..., :last + 1]) per row; +inf where last < 0, for the e-value to report."""
    values = np.asarray(values)
    last = np.asarray(last)
    running = np.minimum.accumulate(values, axis=-1)
    index = np.clip(last, 0, values.shape[-1] - 1)
    picked = np.take_along_axis(running, np.asarray(index)[..., None], axis=-1)[..., 0]
    return np.where(last < 0, np.inf, picked)


def _log_prior_density(u: Array) -> Array:
    """log density of u = log r when r / (1 + r) ~ Beta(k, k)."""
    k = PRIOR_CONCENTRATION
    # log sigmoid(u) = -log1p(e^-u); the Jacobian d theta / du = theta (1 - theta).
    log_theta = -np.logaddexp(0.0, -u)
    log_one_minus = -np.logaddexp(0.0, u)
    return k * (log_theta + log_one_minus) - float(lbeta(k, k))


def _trapezoid_widths(points: Array) -> Array:
    gaps = np.diff(points)
    widths = np.zeros_like(points)
    widths[:-1] += gaps / 2
    widths[1:] += gaps / 2
    return widths


def _shift_left(values: Array) -> Array:
    pad = np.full((*values.shape[:-1], 1), -np.inf)
    return np.concatenate([values[..., 1:], pad], axis=-1)


def _shift_right(values: Array) -> Array:
    pad = np.full((*values.shape[:-1], 1), -np.inf)
    return np.concatenate([pad, values[..., :-1]], axis=-1)


def _suffix_logsumexp(values: Array) -> Array:
    """log Σ_{k>=j} exp(values_k) along the last axis.

    Shifted by the row maximum, then summed in linear space: terms that underflow
    are more than 700 nats below the row's largest and cannot change a decision
    (where every term of a sum underflows, the evidence is reported as none).
    """
    top = np.max(values, axis=-1, keepdims=True)
    linear = np.exp(values - top)
    with np.errstate(divide="ignore"):
        return np.log(np.cumsum(linear[..., ::-1], axis=-1)[..., ::-1]) + top


def _prefix_logsumexp(values: Array) -> Array:
    top = np.max(values, axis=-1, keepdims=True)
    linear = np.exp(values - top)
    with np.errstate(divide="ignore"):
        return np.log(np.cumsum(linear, axis=-1)) + top
