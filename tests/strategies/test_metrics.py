"""Forecast-scoring metrics, each checked against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from strategies.metrics import (
    coverage,
    coverage_1sigma,
    directional_accuracy,
    gaussian_crps,
    gaussian_nll,
    mape_next_close,
    rmse,
    score_all,
)

finite = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.05, max_value=20.0, allow_nan=False, allow_infinity=False)


def _crps_by_integration(mu: float, sigma: float, y: float) -> float:
    """CRPS = ∫ (F(x) − 1{x ≥ y})² dx, integrated numerically on both sides of y."""
    cdf = stats.norm(mu, sigma).cdf
    left, _ = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-12, epsrel=1e-10)
    right, _ = integrate.quad(lambda x: (1.0 - cdf(x)) ** 2, y, np.inf, epsabs=1e-12, epsrel=1e-10)
    return left + right


def test_nll_matches_scipy_logpdf() -> None:
    rng = np.random.default_rng(1)
    mu, sigma, y = rng.normal(size=500), rng.uniform(0.1, 3.0, 500), rng.standard_t(4, 500)
    expected = -np.mean(stats.norm.logpdf(y, loc=mu, scale=sigma))
    assert gaussian_nll(mu, sigma, y) == pytest.approx(expected, rel=1e-12)


def test_nll_of_standard_normal_at_zero_is_the_constant() -> None:
    assert gaussian_nll(np.zeros(3), np.ones(3), np.zeros(3)) == pytest.approx(0.5 * math.log(2 * math.pi), rel=1e-15)


@pytest.mark.parametrize(("mu", "sigma", "y"), [(0.0, 1.0, 0.0), (0.3, 0.5, -1.2), (-2.0, 3.0, 4.0), (1.0, 0.05, 1.01)])
def test_crps_matches_numerical_integration(mu: float, sigma: float, y: float) -> None:
    got = gaussian_crps(np.array([mu]), np.array([sigma]), np.array([y]))
    assert got == pytest.approx(_crps_by_integration(mu, sigma, y), rel=1e-7, abs=1e-10)


def test_crps_matches_energy_form_monte_carlo() -> None:
    # CRPS(F, y) = E|X − y| − ½·E|X − X'| with X, X' ~ F independent (Gneiting & Raftery 2007, eq. 20).
    rng = np.random.default_rng(7)
    mu, sigma, y = 0.4, 1.7, -0.9
    x, x2 = rng.normal(mu, sigma, 400_000), rng.normal(mu, sigma, 400_000)
    mc = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x2))
    assert gaussian_crps(np.array([mu]), np.array([sigma]), np.array([y])) == pytest.approx(mc, abs=5e-3)


def test_crps_of_standard_normal_at_its_mean() -> None:
    # z = 0: σ·(2φ(0) − 1/√π) = (√2 − 1)/√π.
    assert gaussian_crps(np.zeros(1), np.ones(1), np.zeros(1)) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))


@settings(max_examples=200, deadline=None)
@given(mu=finite, sigma=positive, y=finite)
def test_crps_is_nonnegative_and_bounded_by_abs_error_plus_spread(mu: float, sigma: float, y: float) -> None:
    c = gaussian_crps(np.array([mu]), np.array([sigma]), np.array([y]))
    assert c >= 0.0
    # E|X − y| ≤ |μ − y| + E|X − μ| = |μ − y| + σ·√(2/π), and CRPS ≤ E|X − y|.
    assert c <= abs(mu - y) + sigma * math.sqrt(2 / math.pi) + 1e-12


@settings(max_examples=200, deadline=None)
@given(y=finite, sigma=positive, d=st.floats(min_value=1e-3, max_value=30.0))
def test_crps_is_minimised_in_mu_at_the_outcome_and_symmetric(y: float, sigma: float, d: float) -> None:
    def crps_at(mu: float) -> float:
        return gaussian_crps(np.array([mu]), np.array([sigma]), np.array([y]))

    at_y = crps_at(y)
    assert at_y < crps_at(y + d)
    assert at_y < crps_at(y - d)
    assert crps_at(y + d) == pytest.approx(crps_at(y - d), rel=1e-9, abs=1e-12)
    assert crps_at(y + d) <= crps_at(y + 2 * d)


@settings(max_examples=100, deadline=None)
@given(mu=finite, sigma=positive, y=finite, shift=finite, scale=st.floats(min_value=0.1, max_value=10.0))
def test_scores_are_translation_invariant_and_scale_as_expected(mu: float, sigma: float, y: float, shift: float,
                                                               scale: float) -> None:
    m, s, o = np.array([mu]), np.array([sigma]), np.array([y])
    assert gaussian_nll(m + shift, s, o + shift) == pytest.approx(gaussian_nll(m, s, o), rel=1e-9, abs=1e-9)
    assert gaussian_crps(m + shift, s, o + shift) == pytest.approx(gaussian_crps(m, s, o), rel=1e-7, abs=1e-9)
    # A change of units multiplies the density by 1/k: NLL gains log k; CRPS scales by k.
    assert gaussian_nll(scale * m, scale * s, scale * o) == pytest.approx(gaussian_nll(m, s, o) + math.log(scale),
                                                                          rel=1e-9, abs=1e-9)
    assert gaussian_crps(scale * m, scale * s, scale * o) == pytest.approx(scale * gaussian_crps(m, s, o),
                                                                          rel=1e-7, abs=1e-9)


def test_crps_tends_to_absolute_error_as_sigma_vanishes() -> None:
    got = gaussian_crps(np.array([1.0]), np.array([1e-9]), np.array([-2.5]))
    assert got == pytest.approx(3.5, rel=1e-8)


def test_coverage_on_calibrated_draws_is_nominal_within_binomial_tolerance() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    mu, sigma = rng.normal(size=n), rng.uniform(0.2, 4.0, n)
    y = mu + sigma * rng.standard_normal(n)
    for level in (0.5, 0.68, 0.9, 0.95, 0.99):
        tol = 4.0 * math.sqrt(level * (1 - level) / n)
        assert abs(coverage(mu, sigma, y, level) - level) < tol, level
    assert abs(coverage_1sigma(mu, sigma, y) - 0.682689) < 4.0 * math.sqrt(0.2167 / n)


def test_coverage_uses_the_exact_normal_quantile_not_one_sigma() -> None:
    # |z| = 0.997 lies inside ±1σ but outside the 68 % interval (±0.99446σ); |z| = 0.99 inside both.
    mu, sigma = np.zeros(2), np.ones(2)
    y = np.array([0.997, -0.99])
    assert coverage(mu, sigma, y, 0.68) == 0.5
    assert coverage_1sigma(mu, sigma, y) == 1.0
    q95 = float(stats.norm.ppf(0.975))
    assert coverage(mu, sigma, np.array([q95 * (1 - 1e-9), -q95 * (1 + 1e-9)]), 0.95) == 0.5
    assert coverage_1sigma(mu, sigma, np.array([1.0, -1.0])) == 1.0  # the boundary counts as inside


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lo=st.floats(0.01, 0.98), gap=st.floats(0.0, 0.5))
def test_coverage_is_monotone_in_level(seed: int, lo: float, gap: float) -> None:
    rng = np.random.default_rng(seed)
    mu, sigma, y = rng.normal(size=50), rng.uniform(0.1, 2.0, 50), rng.standard_cauchy(50)
    hi = min(lo + gap, 0.999)
    assert coverage(mu, sigma, y, lo) <= coverage(mu, sigma, y, hi)


def test_mape_hand_computed() -> None:
    close_t = np.array([100.0, 200.0])
    mu = np.array([100 * math.log(1.01), 0.0])  # forecasts 101 and 200
    close_next = np.array([102.0, 190.0])
    expected = (abs(101 - 102) / 102 + abs(200 - 190) / 190) / 2 * 100
    assert mape_next_close(close_t, mu, close_next) == pytest.approx(expected, rel=1e-12)


def test_rmse_and_directional_accuracy_hand_computed() -> None:
    mu = np.array([0.5, -0.2, 0.0, 0.3, 0.1])
    y = np.array([1.0, 0.4, -0.3, 0.0, 0.2])
    assert rmse(mu, y) == pytest.approx(math.sqrt((0.25 + 0.36 + 0.09 + 0.09 + 0.01) / 5))
    # y == 0 at index 3 is left out; index 2 has mu == 0: a miss.  Hits: indices 0 and 4 of 4 scored.
    assert directional_accuracy(mu, y) == 0.5
    assert math.isnan(directional_accuracy(mu, np.zeros(5)))


def test_score_all_keys_and_consistency() -> None:
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 301)))
    y = 100 * np.diff(np.log(close))
    mu, sigma = rng.normal(0, 0.1, 300), np.full(300, 1.0)
    out = score_all(close[:-1], close[1:], mu, sigma, y)
    assert set(out) == {"mape", "rmse", "dir_acc", "nll", "crps", "cov68", "cov95", "n"}
    assert out["n"] == 300
    assert out["nll"] == gaussian_nll(mu, sigma, y)
    assert out["cov95"] == coverage(mu, sigma, y, 0.95)
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sigma": np.array([1.0, 0.0, 1.0])}, "sigma"),
        ({"sigma": np.array([1.0, -1.0, 1.0])}, "sigma"),
        ({"y": np.array([0.1, np.nan, 0.2])}, "y"),
        ({"mu": np.array([0.0, 0.0])}, "mu"),
        ({"close_t": np.array([1.0, np.inf, 1.0])}, "close_t"),
        ({"close_next": np.array([1.0, 0.0, 1.0])}, "close_next"),
        ({"mu": np.zeros((3, 1))}, "mu"),
    ],
)
def test_score_all_rejects_bad_input_naming_the_array(kwargs: dict[str, np.ndarray], name: str) -> None:
    args = {"close_t": np.ones(3), "close_next": np.ones(3), "mu": np.zeros(3), "sigma": np.ones(3),
            "y": np.zeros(3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        score_all(**args)


def test_empty_input_and_bad_level_are_rejected() -> None:
    with pytest.raises(ValueError, match="mu is empty"):
        gaussian_nll(np.array([]), np.array([]), np.array([]))
    with pytest.raises(ValueError, match="level"):
        coverage(np.zeros(2), np.ones(2), np.zeros(2), 1.0)
