"""Confidence sequences for one rate: `events` out of `trials`, each trial an event or not.

The e-process is Robbins' Beta-binomial mixture: the likelihood of the data
averaged over a prior on the rate, divided by the likelihood at the rate being
tested. For any true rate p, M_n / L_n(p) is a non-negative martingale with
mean 1, so by Ville's inequality the set {p : M_n / L_n(p) < 1/alpha} covers p
at every n at once with probability at least 1 - alpha, however often it is
looked at and however the trials are batched.

The prior is an equal mixture of Beta(1, 1/m - 1) over rates m from 0.01 % to
50 %, so that a rare event (an error rate of 0.05 %) and a common one (a 30 %
disagreement rate) both cost few samples: the marginal likelihood stays in
closed form (a sum of Beta functions).

All functions take numpy arrays (one entry per simulated run in the benchmark,
a single entry in the controller).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from gray.controller.gates.stats.special import Array, lbeta, logsumexp, xlog1py, xlogy

PRIOR_MEANS = (1e-4, 1e-3, 1e-2, 1e-1, 0.5)
_PRIOR_A = np.ones(len(PRIOR_MEANS))
_PRIOR_B = np.array([1.0 / m - 1.0 for m in PRIOR_MEANS])
_PRIOR_LOG_WEIGHT = -math.log(len(PRIOR_MEANS))
_PRIOR_LBETA = lbeta(_PRIOR_A, _PRIOR_B)

# Bisection on the log-odds of the rate: 56 halvings of [-40, 40] are far finer than needed.
_LOGIT_FLOOR = -40.0
_LOGIT_CEIL = 40.0
_BISECTIONS = 56


def log_marginal(events: ArrayLike, trials: ArrayLike) -> Array:
    """log of the mixture likelihood M_n (the binomial coefficient left out, as in L_n)."""
    s = np.asarray(events, dtype=np.float64)[..., None]
    n = np.asarray(trials, dtype=np.float64)[..., None]
    terms = _PRIOR_LOG_WEIGHT + lbeta(_PRIOR_A + s, _PRIOR_B + n - s) - _PRIOR_LBETA
    return logsumexp(terms, axis=-1)


def log_likelihood(rate: ArrayLike, events: ArrayLike, trials: ArrayLike) -> Array:
    """log L_n(p) = s log p + (n - s) log(1 - p)."""
    p = np.asarray(rate, dtype=np.float64)
    s = np.asarray(events, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    return xlogy(s, p) + xlog1py(n - s, -p)


def log_e_value(rate: ArrayLike, events: ArrayLike, trials: ArrayLike) -> Array:
    """log(M_n / L_n(p)): the evidence against the rate being exactly `rate`."""
    return log_marginal(events, trials) - log_likelihood(rate, events, trials)


def log_e_value_at_most(limit: ArrayLike, events: ArrayLike, trials: ArrayLike) -> Array:
    """log e-value against "the rate is at most `limit`".

    M_n / sup_{p <= limit} L_n(p) is below M_n / L_n(p) for every such p, so it is a
    valid e-value for the whole composite null. The supremum sits at min(observed, limit).
    """
    s = np.asarray(events, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    observed = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    worst_case = np.minimum(observed, np.asarray(limit, dtype=np.float64))
    return log_marginal(s, n) - log_likelihood(worst_case, s, n)


def confidence_bounds(events: ArrayLike, trials: ArrayLike, alpha: float) -> tuple[Array, Array]:
    """The confidence sequence at this n: (lower, upper) rate bounds.

    The set {p : log L_n(p) > log M_n - log(1/alpha)} is an interval around the
    observed rate because log L_n is concave; its ends are found by bisection on
    the log-odds, both ends at once, keeping the bracket's outer side so that the
    bounds returned are never narrower than the exact ones.
    """
    s = np.atleast_1d(np.asarray(events, dtype=np.float64))
    n = np.atleast_1d(np.asarray(trials, dtype=np.float64))
    threshold = log_marginal(s, n) - math.log(1.0 / alpha)
    observed = np.divide(s, n, out=np.full_like(s, 0.5), where=n > 0)
    middle_logit = _logit(observed)
    # Rows 0..k-1 look for the lower end (outside is to the left), rows k.. for the upper.
    outside = np.concatenate([np.full_like(s, _LOGIT_FLOOR), np.full_like(s, _LOGIT_CEIL)])
    inside = np.concatenate([middle_logit, middle_logit])
    s2, n2, t2 = np.tile(s, 2), np.tile(n, 2), np.tile(threshold, 2)
    for _ in range(_BISECTIONS):
        middle = 0.5 * (outside + inside)
        is_inside = _log_likelihood_at_logit(middle, s2, n2) > t2
        inside = np.where(is_inside, middle, inside)
        outside = np.where(is_inside, outside, middle)
    lower, upper = np.split(_expit(outside), 2)
    lower = np.where((s <= 0) | (n <= 0), 0.0, lower)
    upper = np.where((s >= n) | (n <= 0), 1.0, upper)
    return lower, upper


def _log_likelihood_at_logit(x: Array, s: Array, n: Array) -> Array:
    """s log p + (n - s) log(1 - p) at p = expit(x), without forming p."""
    return -s * np.logaddexp(0.0, -x) - (n - s) * np.logaddexp(0.0, x)


def _logit(p: Array) -> Array:
    clipped = np.clip(p, 1e-300, 1.0 - 1e-16)
    return np.clip(np.log(clipped) - np.log1p(-clipped), _LOGIT_FLOOR, _LOGIT_CEIL)


def _expit(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))
