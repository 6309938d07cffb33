"""The gates' closed forms and grid mixtures against independent computations:
scipy's special functions, numerical integrals of the same mixtures, and the
reference values of the confseq library (Howard & Ramdas's own implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from gray.controller.gates.stats import cdf, proportion, ratio
from gray.controller.gates.stats.special import lbeta, lgamma, logsumexp


@pytest.mark.parametrize("x", [1e-8, 0.01, 0.5, 1.0, 2.5, 7.999, 8.0, 40.0, 1e4, 1e9, 1e14])
def test_lgamma_matches_the_standard_library(x: float) -> None:
    assert float(lgamma(x)) == pytest.approx(math.lgamma(x), rel=1e-12, abs=1e-12)


def test_lbeta_and_logsumexp_match_scipy() -> None:
    a = np.array([0.3, 1.0, 5.0, 1e6])
    b = np.array([2.0, 1e-3, 5.0, 3e5])
    np.testing.assert_allclose(lbeta(a, b), special.betaln(a, b), rtol=1e-11)
    values = np.array([[-1e5, -3.0, 2.0], [-np.inf, -np.inf, 0.5]])
    np.testing.assert_allclose(logsumexp(values), special.logsumexp(values, axis=-1))


def _grid_loglik(grid: ratio.RatioGrid, looks: list[tuple[int, int, int, int]]) -> np.ndarray:
    loglik = np.zeros(grid.size)
    for candidate_events, baseline_events, candidate_n, baseline_n in looks:
        loglik = ratio.add_look(
            loglik, grid, candidate_events, baseline_events, candidate_n, baseline_n
        )
    return loglik


@pytest.mark.parametrize(("c", "b"), [(0, 0), (3, 9), (40, 17), (150, 170), (400, 330)])
def test_even_split_mixture_equals_lindon_malek_closed_form(c: int, b: int) -> None:
    """With a constant 50 % share the grid mixture is a quadrature of the Beta(k, k) mixture,
    whose e-value is B(k + c, k + b) / B(k, k) / (1/2)^(c + b) in closed form."""
    k = ratio.PRIOR_CONCENTRATION
    grid = ratio.ratio_grid(1.0)
    loglik = _grid_loglik(grid, [(c, b, 500, 500)])
    two_sided = float(np.logaddexp.reduce(grid.log_weight + loglik) - loglik[grid.anchor])
    closed = special.betaln(k + c, k + b) - special.betaln(k, k) - (c + b) * math.log(0.5)
    assert two_sided == pytest.approx(closed, abs=2e-3)

    # One-sided, against r <= 1 (Beta mixture restricted to theta > 1/2) and r >= 1. The
    # side the data point to is a smooth quadrature; the other side's integrand is steep at
    # the boundary, so its (tiny) e-value is only close.
    upper_tail = special.betaincc(k + c, k + b, 0.5)
    closed_up = closed + math.log(upper_tail) - math.log(0.5)
    up = float(ratio.log_evidence_up(loglik, grid)[grid.anchor])
    lower_tail = special.betainc(k + c, k + b, 0.5)
    closed_down = closed + math.log(lower_tail) - math.log(0.5)
    down = float(ratio.log_evidence_down(loglik, grid)[grid.anchor])
    assert up == pytest.approx(closed_up, abs=0.02 if c >= b else 0.1)
    assert down == pytest.approx(closed_down, abs=0.02 if c <= b else 0.1)


def test_changing_share_mixture_equals_its_numerical_integral() -> None:
    """Shares that change from look to look: the grid mixture against scipy's quadrature of
    the same prior times the per-look conditional likelihoods."""
    looks = [(2, 30, 100, 1900), (9, 41, 400, 1600), (30, 33, 1000, 1000), (7, 2, 900, 100)]
    margin = 1.1
    grid = ratio.ratio_grid(margin)
    loglik = _grid_loglik(grid, looks)
    two_sided = float(np.logaddexp.reduce(grid.log_weight + loglik) - loglik[grid.anchor])
    up = float(ratio.log_evidence_up(loglik, grid)[grid.anchor])

    k = ratio.PRIOR_CONCENTRATION

    def log_lik(u: float) -> float:
        total = 0.0
        for c, b, nc, nb in looks:
            rho = nc / (nc + nb)
            theta = rho * math.exp(u) / (rho * math.exp(u) + 1 - rho)
            total += c * math.log(theta) + b * math.log1p(-theta)
        return total

    def prior(u: float) -> float:
        theta = 1 / (1 + math.exp(-u))
        return math.exp(k * math.log(theta * (1 - theta)) - special.betaln(k, k))

    u0, limit = math.log(margin), ratio.GRID_LIMIT
    at_margin = log_lik(u0)

    def ratio_to_margin(u: float) -> float:
        return prior(u) * math.exp(log_lik(u) - at_margin)

    whole, _ = integrate.quad(ratio_to_margin, -limit, limit, points=[u0], limit=400)
    mass, _ = integrate.quad(prior, -limit, limit)
    assert two_sided == pytest.approx(math.log(whole / mass), abs=2e-3)
    above, _ = integrate.quad(ratio_to_margin, u0, limit, limit=400)
    mass_above, _ = integrate.quad(prior, u0, limit)
    assert up == pytest.approx(math.log(above / mass_above), abs=0.03)


def test_rate_mixture_equals_its_numerical_integral() -> None:
    for events, trials in [(0, 0), (0, 5000), (3, 2000), (57, 600), (900, 1000)]:

        def integrand(p: float, s: int = events, n: int = trials) -> float:
            density = sum(
                (1 / len(proportion.PRIOR_MEANS))
                * math.exp(math.log(1 / m - 1) + (1 / m - 2) * math.log1p(-p) if m < 0.5 else 0.0)
                for m in proportion.PRIOR_MEANS
            )
            return density * math.exp(s * math.log(p) + (n - s) * math.log1p(-p)) if p > 0 else 0

        breaks = [1e-6, 1e-4, 1e-3, 1e-2, 0.1, 0.5, events / trials if trials else 0.5]
        value, _ = integrate.quad(integrand, 0, 1, points=sorted(set(breaks)), limit=500)
        assert float(proportion.log_marginal(events, trials)) == pytest.approx(
            math.log(value), abs=1e-4
        )


def test_rate_bounds_sit_on_the_boundary_of_the_confidence_set() -> None:
    alpha = 0.05
    events, trials = np.array([0, 4, 120, 999]), np.array([3000, 3000, 1000, 1000])
    lower, upper = proportion.confidence_bounds(events, trials, alpha)
    for i in range(len(events)):
        for bound in (lower[i], upper[i]):
            if 0 < bound < 1:
                log_e = float(proportion.log_e_value(bound, events[i], trials[i]))
                assert log_e == pytest.approx(math.log(1 / alpha), abs=1e-6)
    # No events: the upper bound has a closed form, n log(1 - p) = log M - log(1/alpha).
    threshold = float(proportion.log_marginal(0, 3000)) - math.log(1 / alpha)
    assert upper[0] == pytest.approx(-math.expm1(threshold / 3000), rel=1e-9)
    assert lower[0] == 0.0


def test_band_constant_matches_the_confseq_reference() -> None:
    """confseq's unit test: empirical_process_lil_bound(1000, 0.05, t_min=100) = 0.08204769."""
    constant = cdf.band_constant(0.05)
    t, t_min = 1000, 100
    bound = cdf.LEADING_CONSTANT * math.sqrt((math.log(1 + math.log(t / t_min)) + constant) / t)
    assert bound == pytest.approx(0.08204769, abs=1e-6)
    # And the paper's closed-form approximation C ~ 0.8 log(1612 / alpha) at moderate alpha.
    assert constant == pytest.approx(0.8 * math.log(1612 / 0.05), rel=0.03)


def test_distribution_p_value_is_the_level_at_which_the_bound_reaches_the_tolerance() -> None:
    p = cdf.always_valid_p_value(0.2, 2000, 1500, 0.05)
    assert 0 < p < 0.05
    just_below, _ = cdf.shift_interval(0.2, 2000, 1500, p * 0.99)
    just_above, _ = cdf.shift_interval(0.2, 2000, 1500, p * 1.01)
    assert float(just_below) < 0.05 < float(just_above)
    assert cdf.always_valid_p_value(0.04, 2000, 1500, 0.05) == 1.0
