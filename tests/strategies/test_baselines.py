"""EWMA and GARCH(1,1) baselines: recursions, strict causality, arch agreement, real-data reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.baselines import (
    Garch11Params,
    garch11_fit,
    garch11_forecast,
    garch11_walk_forward,
    persistence_ewma,
)
from strategies.metrics import coverage, coverage_1sigma, gaussian_nll

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _simulate_garch(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n + 500)
    r = np.empty(n + 500)
    var = omega / (1.0 - alpha - beta)
    for t in range(n + 500):
        r[t] = np.sqrt(var) * z[t]
        var = omega + alpha * r[t] ** 2 + beta * var
    return r[500:]  # drop burn-in


@pytest.fixture(scope="module")
def sim_returns() -> np.ndarray:
    return _simulate_garch(20_000, omega=0.05, alpha=0.10, beta=0.85, seed=42)


@pytest.fixture(scope="module")
def sim_params(sim_returns: np.ndarray) -> Garch11Params:
    return garch11_fit(sim_returns[:14_000])


# --- persistence + EWMA ---------------------------------------------------------------------------

def test_ewma_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    r = rng.standard_t(5, 300)
    lam, warmup = 0.94, 24
    mu, sigma = persistence_ewma(r, lam=lam, warmup=warmup)
    expected = np.full(r.size, np.nan)
    var = np.mean(r[:warmup] ** 2)
    for t in range(warmup, r.size):
        expected[t] = np.sqrt(var)
        var = lam * var + (1 - lam) * r[t] ** 2
    np.testing.assert_allclose(sigma, expected, rtol=1e-13, equal_nan=True)
    assert np.all(np.isnan(mu[:warmup])) and np.all(mu[warmup:] == 0.0)
    assert np.all(np.isnan(sigma[:warmup])) and np.all(sigma[warmup:] > 0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), t=st.integers(0, 199), warmup=st.integers(1, 50))
def test_ewma_is_strictly_causal(seed: int, t: int, warmup: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(size=200)
    changed = r.copy()
    changed[t:] = rng.normal(scale=10.0, size=200 - t)
    _, a = persistence_ewma(r, warmup=warmup)
    _, b = persistence_ewma(changed, warmup=warmup)
    # Forecasts of bars <= t use returns < t only: bit-for-bit identical.
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    if t + 1 < r.size and t + 1 > warmup:
        assert a[t + 1] != b[t + 1]  # ...and the change does reach the next forecast


def test_ewma_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lam"):
        persistence_ewma(np.ones(10), lam=1.0)
    with pytest.raises(ValueError, match="warmup"):
        persistence_ewma(np.ones(10), warmup=11)
    with pytest.raises(ValueError, match="returns_pct"):
        persistence_ewma(np.array([0.1, np.nan, 0.2]), warmup=1)


# --- GARCH(1,1) -----------------------------------------------------------------------------------

def test_garch_recovers_simulated_parameters(sim_returns: np.ndarray) -> None:
    p = garch11_fit(sim_returns)
    assert p.alpha == pytest.approx(0.10, abs=0.03)
    assert p.beta == pytest.approx(0.85, abs=0.04)
    assert p.omega == pytest.approx(0.05, abs=0.025)
    assert p.omega / (1 - p.persistence) == pytest.approx(1.0, rel=0.2)  # unconditional variance
    assert p.mu == 0.0 and p.n_train == sim_returns.size


def test_garch_filter_matches_arch_conditional_volatility_in_sample(sim_returns: np.ndarray,
                                                                   sim_params: Garch11Params) -> None:
    train = sim_returns[:14_000]
    fixed = arch_model(train, mean="Zero", vol="GARCH", p=1, q=1, dist="normal").fix(
        [sim_params.omega, sim_params.alpha, sim_params.beta])
    mu, sigma = garch11_forecast(sim_params, train, start=0)
    np.testing.assert_allclose(sigma, np.asarray(fixed.conditional_volatility), rtol=1e-8)
    assert np.all(mu == 0.0)
    # arch's log-likelihood counts the same constant as gaussian_nll.
    assert gaussian_nll(mu, sigma, train) == pytest.approx(-sim_params.loglik / train.size, rel=1e-8)


def test_garch_out_of_sample_matches_arch_forecast(sim_returns: np.ndarray, sim_params: Garch11Params) -> None:
    n = 14_000
    fixed = arch_model(sim_returns, mean="Zero", vol="GARCH", p=1, q=1, dist="normal").fix(
        [sim_params.omega, sim_params.alpha, sim_params.beta])
    # arch's row t holds the h=1 variance made at origin t, i.e. the forecast of bar t + 1.
    arch_var = fixed.forecast(horizon=1, start=n - 1, reindex=False).variance.to_numpy()[:-1, 0]
    _, sigma = garch11_forecast(sim_params, sim_returns, start=n)
    np.testing.assert_allclose(sigma**2, arch_var, rtol=1e-8)
    assert sigma[0] ** 2 == pytest.approx(sim_params.next_variance, rel=1e-14)
    assert sim_params.step(sigma[0] ** 2, sim_returns[n]) == pytest.approx(sigma[1] ** 2, rel=1e-14)


@settings(max_examples=40, deadline=None)
@given(t=st.integers(0, 2999), seed=st.integers(0, 2**32 - 1))
def test_garch_forecast_is_strictly_causal(sim_params: Garch11Params, sim_returns: np.ndarray, t: int,
                                           seed: int) -> None:
    r = sim_returns[:3000]
    changed = r.copy()
    changed[t:] = np.random.default_rng(seed).normal(scale=5.0, size=r.size - t)
    _, a = garch11_forecast(sim_params, r, start=0)
    _, b = garch11_forecast(sim_params, changed, start=0)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    if t + 1 < r.size:
        assert a[t + 1] != b[t + 1]


def test_walk_forward_does_not_see_the_test_period(sim_returns: np.ndarray) -> None:
    n = 14_000
    mu, sigma, params = garch11_walk_forward(sim_returns, n)
    assert mu.shape == sigma.shape == (sim_returns.size - n,)
    scrambled = sim_returns.copy()
    scrambled[n:] *= 3.0
    _, _, params_scrambled = garch11_walk_forward(scrambled, n)
    assert params == params_scrambled  # the fit used [:n] only


def test_garch_fit_rejects_fractional_returns(sim_returns: np.ndarray) -> None:
    with pytest.raises(ValueError, match="percent"):
        garch11_fit(sim_returns[:5000] / 1000.0)


def test_garch_constant_mean_is_available(sim_returns: np.ndarray) -> None:
    p = garch11_fit(sim_returns[:5000], mean="Constant")
    assert p.mean == "Constant" and abs(p.mu) < 0.1
    mu, _ = garch11_forecast(p, sim_returns[:6000], start=5000)
    assert np.all(mu == p.mu)


# --- real Binance data (issue #3 reference) -------------------------------------------------------

def _pct_log_returns(symbol: str) -> np.ndarray:
    path = DATA / f"{symbol}-1h.csv.gz"
    if not path.exists():
        pytest.skip(f"real Binance data not present: ../shared/data/{path.name} (relative to the repo root)")
    close = pd.read_csv(path)["close"].to_numpy(dtype=np.float64)
    return 100.0 * np.diff(np.log(close))


def test_garch_reproduces_the_btc_reference() -> None:
    r = _pct_log_returns("BTCUSDT")
    n = int(0.7 * r.size)
    mu, sigma, _ = garch11_walk_forward(r, n)
    y = r[n:]
    assert gaussian_nll(mu, sigma, y) == pytest.approx(0.640, abs=0.03)
    assert 0.80 <= coverage_1sigma(mu, sigma, y) <= 0.86
    assert 0.93 <= coverage(mu, sigma, y, 0.95) <= 0.98
    # The honest comparison: GARCH beats the RiskMetrics EWMA on out-of-sample NLL.
    e_mu, e_sigma = persistence_ewma(r)
    assert gaussian_nll(mu, sigma, y) < gaussian_nll(e_mu[n:], e_sigma[n:], y)
