"""Vectorised special functions the gates need, in numpy alone.

scipy would do, but it is slow to import and the gates run inside the
controller on every look; these few functions are all the gates use.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
# Below this the Stirling series is shifted up by the recurrence Γ(x+1) = xΓ(x).
_STIRLING_FROM = 8.0


def lgamma(x: ArrayLike) -> Array:
    """log Γ(x) for x > 0, accurate to about 1e-14 (Stirling series after a shift)."""
    x = np.asarray(x, dtype=np.float64)
    small = x < _STIRLING_FROM
    shift = np.zeros_like(x)
    z = x.copy()
    if np.any(small):
        # log Γ(x) = log Γ(x + 8) - Σ_{i<8} log(x + i), summed as logs to avoid overflow.
        xs = x[small]
        shift[small] = sum(np.log(xs + i) for i in range(int(_STIRLING_FROM)))
        z[small] = xs + _STIRLING_FROM
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (
        1 / 12
        - inv2
        * (
            1 / 360
            - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 * (1 / 1188 - inv2 * 691 / 360360)))
        )
    )
    return (z - 0.5) * np.log(z) - z + _HALF_LOG_TWO_PI + series - shift


def lbeta(a: ArrayLike, b: ArrayLike) -> Array:
    """log B(a, b) for a, b > 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def logsumexp(values: ArrayLike, axis: int = -1) -> Array:
    """log Σ exp(values) along `axis`, stable for very negative or -inf entries."""
    values = np.asarray(values, dtype=np.float64)
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return np.squeeze(total, axis=axis)


def xlogy(x: ArrayLike, y: ArrayLike) -> Array:
    """x * log(y) with 0 * log(0) = 0, as a likelihood needs."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * np.log(y)
    return np.where(x == 0, 0.0, out)


def xlog1py(x: ArrayLike, y: ArrayLike) -> Array:
    """x * log(1 + y) with 0 * log(0) = 0."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * np.log1p(y)
    return np.where(x == 0, 0.0, out)


def exp_or_inf(value: float) -> float:
    """math.exp that answers infinity instead of raising for a huge e-value."""
    return math.inf if value > 709.0 else math.exp(value)
