"""Portfolio VaR/ES: hand-computed Gaussian cases, historical quantiles, Cornish-Fisher, properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.var import (
    MIN_ROWS,
    VarEstimate,
    cornish_fisher_var,
    correlation,
    historical_var,
    model_var,
    portfolio_risk,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"

Z99 = 2.3263478740408408  # Φ⁻¹(0.99)
PHI_Z99 = 0.02665214220345808  # φ(Φ⁻¹(0.99))


def fat_tailed(seed: int, t: int, n: int, scale: float = 0.01, df: float = 4.0) -> np.ndarray:
    """Correlated student-t log returns (T, n)."""
    rng = np.random.default_rng(seed)
    common = rng.standard_t(df, size=(t, 1))
    own = rng.standard_t(df, size=(t, n))
    return scale * (0.6 * common + 0.8 * own) / math.sqrt(df / (df - 2))


def window_methods(w: np.ndarray, r: np.ndarray, h: int) -> list[VarEstimate]:
    """The three methods on one window, the model method fed the window's own moments."""
    mu, sigma = r.mean(axis=0), r.std(axis=0)
    return [model_var(w, mu, sigma, correlation(r), h), historical_var(w, r, h),
            cornish_fisher_var(w, r, h)]


books = st.builds(
    lambda seed, t, n, df, scale, raw: (fat_tailed(seed, t, n, scale, df), np.array(raw[:n])),
    st.integers(0, 2**32 - 1), st.integers(MIN_ROWS + 30, 160), st.integers(1, 4),
    st.floats(2.5, 30.0), st.floats(1e-4, 0.05),
    st.lists(st.floats(-1e6, 1e6) | st.just(0.0), min_size=4, max_size=4),
)


# --- model (Gaussian) ----------------------------------------------------------------------------

def test_model_var_one_asset_matches_hand_computation() -> None:
    est = model_var([1000.0], [0.001], [0.02], [[1.0]], horizon=1, alpha=0.99)
    assert est.method == "model" and est.horizon == 1 and est.alpha == 0.99
    assert est.var == pytest.approx(-1.0 + Z99 * 20.0, rel=1e-12)  # 45.527
    assert est.es == pytest.approx(-1.0 + 20.0 * PHI_Z99 / 0.01, rel=1e-12)  # 52.304
    assert est.contributions.tolist() == pytest.approx([est.var])


def test_model_var_two_assets_matches_hand_computation() -> None:
    # w = (1000, −500), σ = (2%, 3%), ρ = 0.5, μ = 0, h = 24:
    # wᵀΣw / 24 = 400 + 225 − 2·1000·500·0.5·0.02·0.03 = 325;  Σw / 24 = (0.25, −0.15).
    est = model_var([1000.0, -500.0], [0.0, 0.0], [0.02, 0.03], [[1.0, 0.5], [0.5, 1.0]], 24)
    sigma_p = math.sqrt(24 * 325.0)
    assert est.var == pytest.approx(Z99 * sigma_p, rel=1e-12)
    assert est.es == pytest.approx(sigma_p * PHI_Z99 / 0.01, rel=1e-12)
    expected = [Z99 * 24 * 1000 * 0.25 / sigma_p, Z99 * 24 * 500 * 0.15 / sigma_p]
    assert est.contributions.tolist() == pytest.approx(expected, rel=1e-12)
    assert est.contributions.sum() == pytest.approx(est.var, rel=1e-12)


def test_model_var_is_zero_when_the_quantile_is_a_gain() -> None:
    est = model_var([1000.0], [0.1], [0.01], [[1.0]])
    assert est.var == 0.0 and est.es == 0.0 and est.contributions.tolist() == [0.0]


# --- historical ----------------------------------------------------------------------------------

def test_historical_var_is_the_lower_order_statistic() -> None:
    # P&L of a 1-unit book is exactly expm1(r): losses 1..200.  With N = 200 and numpy's "lower"
    # method the 1% quantile is order statistic floor(0.01·199) = index 1: the second-worst loss.
    pnl = -np.arange(1.0, 201.0) / 1000.0
    r = np.log1p(np.random.default_rng(0).permutation(pnl))[:, None]
    est = historical_var([1.0], r)
    assert est.var == pytest.approx(0.199, rel=1e-12)
    assert est.es == pytest.approx((0.200 + 0.199) / 2, rel=1e-12)
    assert est.contributions.tolist() == pytest.approx([0.199])
    # N = 100: index floor(0.99) = 0, the worst loss itself.
    assert historical_var([1.0], r[:100]).var == pytest.approx(-float(np.expm1(r[:100]).min()))


def test_historical_var_uses_overlapping_horizon_sums() -> None:
    r = fat_tailed(1, 60, 2)
    w = np.array([300.0, -100.0])
    sums = np.array([r[k:k + 5].sum(axis=0) for k in range(60 - 5 + 1)])  # 56 overlapping windows
    pnl = np.expm1(sums) @ w
    q = np.sort(pnl)[math.floor(0.01 * (len(pnl) - 1))]
    est = historical_var(w, r, horizon=5)
    assert est.var == pytest.approx(-q, rel=1e-12)
    assert est.es == pytest.approx(-pnl[pnl <= q].mean(), rel=1e-12)


def test_historical_var_falls_back_to_sqrt_h_scaling_with_few_overlaps() -> None:
    r = fat_tailed(2, 40, 2)  # 40 − 24 + 1 = 17 < 20 overlapping 24-bar windows
    w = np.array([100.0, 50.0])
    one, day = historical_var(w, r, 1), historical_var(w, r, 24)
    assert day.var == pytest.approx(math.sqrt(24) * one.var, rel=1e-12)
    assert day.es == pytest.approx(math.sqrt(24) * one.es, rel=1e-12)


def test_rows_with_nan_are_dropped_and_too_few_rows_raise() -> None:
    r = fat_tailed(3, 30, 2)
    holey = r.copy()
    holey[[0, 5, 9], 1] = np.nan
    assert historical_var([1.0, 1.0], holey).var == historical_var([1.0, 1.0], np.delete(r, [0, 5, 9], 0)).var
    holey[10:25, 0] = np.nan  # 30 − 3 − 15 = 12 complete rows
    for fn in (historical_var, cornish_fisher_var):
        with pytest.raises(ValueError, match="12 of 30 bars.*at least 20"):
            fn([1.0, 1.0], holey)
    with pytest.raises(ValueError, match="at least 20"):
        portfolio_risk([1.0, 1.0], holey, [0.0, 0.0], [0.01, 0.01])


# --- Cornish-Fisher ------------------------------------------------------------------------------

def test_cornish_fisher_reduces_to_gaussian_when_skew_and_kurtosis_vanish() -> None:
    # P&L on {−a, 0, +a} with P(±a) = 1/6: mean 0, skewness 0, kurtosis 1/(2·1/6) = 3 (excess 0).
    a = 0.02
    pnl = np.tile([-a, 0.0, 0.0, 0.0, 0.0, a], 10)
    r = np.log1p(pnl)[:, None]
    sd = a / math.sqrt(3.0)
    for h in (1, 24):
        est = cornish_fisher_var([1000.0], r, horizon=h)
        assert est.var == pytest.approx(1000.0 * Z99 * sd * math.sqrt(h), rel=1e-9)
        assert est.es == pytest.approx(1000.0 * PHI_Z99 / 0.01 * sd * math.sqrt(h), rel=1e-3)
        gauss = model_var([1000.0], [0.0], [sd], [[1.0]], horizon=h)
        assert est.var == pytest.approx(gauss.var, rel=1e-9)


def test_fat_tails_give_a_larger_cornish_fisher_var_than_gaussian() -> None:
    r = np.random.default_rng(7).standard_t(4, size=(2000, 1)) * 0.01
    pnl = np.expm1(r[:, 0]) * 1000.0
    gaussian = -(pnl.mean() - Z99 * pnl.std())
    est = cornish_fisher_var([1000.0], r)
    assert est.var > 1.1 * gaussian
    assert est.es > est.var


def test_cornish_fisher_guard_keeps_extreme_moments_finite_and_ordered() -> None:
    # One huge outlier: skewness ≈ 9, excess kurtosis ≈ 80, far outside the expansion's validity.
    r = np.full((100, 1), 0.001)
    r[::2] = -0.001
    r[50] = 0.5
    for w in (1000.0, -1000.0):
        est = cornish_fisher_var([w], r)
        assert math.isfinite(est.var) and math.isfinite(est.es) and est.es >= est.var >= 0.0


# --- all methods: properties ---------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(books, st.sampled_from([1, 24]))
def test_es_at_least_var_and_contributions_sum_to_var(book: tuple[np.ndarray, np.ndarray],
                                                      h: int) -> None:
    r, w = book
    for est in window_methods(w, r, h):
        assert math.isfinite(est.var) and est.es >= est.var >= 0.0
        assert est.contributions.shape == w.shape
        assert est.contributions.sum() == pytest.approx(est.var, rel=1e-7, abs=1e-9 * (1 + abs(w).sum()))


@settings(max_examples=60, deadline=None)
@given(books, st.sampled_from([1, 24]), st.floats(1.0, 50.0))
def test_var_is_monotone_and_homogeneous_along_a_ray(book: tuple[np.ndarray, np.ndarray], h: int,
                                                     k: float) -> None:
    r, w = book
    tol = 1e-9 * (1 + abs(w).sum() * k)
    for small, big in zip(window_methods(w, r, h), window_methods(k * w, r, h), strict=True):
        assert big.var >= small.var - tol
        assert big.var == pytest.approx(k * small.var, rel=1e-7, abs=tol)
        assert big.es == pytest.approx(k * small.es, rel=1e-7, abs=tol)


@settings(max_examples=60, deadline=None)
@given(books, st.integers(0, 3), st.floats(1e-3, 1e6), st.floats(1.0, 100.0), st.booleans())
def test_single_position_var_is_non_decreasing_in_size(book: tuple[np.ndarray, np.ndarray],
                                                       i: int, size: float, growth: float,
                                                       short: bool) -> None:
    r, _ = book
    n = r.shape[1]
    sign = -1.0 if short else 1.0
    small, big = np.zeros(n), np.zeros(n)
    small[i % n], big[i % n] = sign * size, sign * size * growth
    for a, b in zip(window_methods(small, r, 1), window_methods(big, r, 1), strict=True):
        assert b.var >= a.var - 1e-9 * size * growth


@settings(max_examples=40, deadline=None)
@given(books)
def test_correlation_is_symmetric_psd_with_unit_diagonal(book: tuple[np.ndarray, np.ndarray]) -> None:
    r, _ = book
    c = correlation(r)
    assert np.array_equal(c, c.T) and np.all(np.diag(c) == 1.0)
    assert np.linalg.eigvalsh(c).min() >= -1e-10
    assert np.allclose(c, np.corrcoef(r, rowvar=False).reshape(c.shape))


def test_zero_variance_symbol_is_uncorrelated() -> None:
    r = fat_tailed(4, 50, 3)
    r[:, 1] = 0.0
    c = correlation(r)
    assert c[1].tolist() == [0.0, 1.0, 0.0] and c[:, 1].tolist() == [0.0, 1.0, 0.0]
    est = portfolio_risk([100.0, 100.0, 100.0], r, [0.0] * 3, [0.01, 0.0, 0.01])
    assert all(math.isfinite(e.var) for e in est)


def test_empty_book_has_zero_risk() -> None:
    r = fat_tailed(5, 60, 2)
    for est in portfolio_risk([0.0, 0.0], r, [0.0, 0.0], [0.01, 0.01]):
        assert est.var == 0.0 and est.es == 0.0 and est.contributions.tolist() == [0.0, 0.0]


def test_portfolio_risk_returns_three_methods_per_horizon() -> None:
    r = fat_tailed(6, 127, 3)
    est = portfolio_risk([1000.0, -500.0, 250.0], r, [0.0, 0.0, 0.0], r.std(axis=0))
    assert [(e.method, e.horizon) for e in est] == [
        ("model", 1), ("historical", 1), ("cornish_fisher", 1),
        ("model", 24), ("historical", 24), ("cornish_fisher", 24)]
    assert all(e.alpha == 0.99 and e.var > 0 for e in est)


def test_invalid_inputs_are_rejected_with_the_reason() -> None:
    r = fat_tailed(8, 60, 2)
    with pytest.raises(ValueError, match="exposures must have shape"):
        historical_var([1.0], r)
    with pytest.raises(ValueError, match="horizon"):
        historical_var([1.0, 1.0], r, horizon=0)
    with pytest.raises(ValueError, match="alpha"):
        cornish_fisher_var([1.0, 1.0], r, alpha=1.0)
    with pytest.raises(ValueError, match="sigma must be non-negative"):
        model_var([1.0], [0.0], [-0.01], [[1.0]])


# --- stress versus calm --------------------------------------------------------------------------

def stress_ratio(calm: np.ndarray, stress: np.ndarray) -> float:
    """99% 1-bar historical VaR of an equal-weight long book, stressed window over calm window."""
    w = np.full(calm.shape[1], 1000.0)
    return historical_var(w, stress).var / historical_var(w, calm).var


def test_volatility_regime_switch_raises_historical_var() -> None:
    r = np.vstack([fat_tailed(9, 127, 3, scale=0.004, df=3.0), fat_tailed(10, 127, 3, scale=0.03, df=3.0)])
    r[130, 1] = np.nan  # a missing bar inside the stressed window
    calm, stress = r[:127], r[127:]
    assert stress_ratio(calm, stress) > 2.0
    w = np.full(3, 1000.0)
    assert cornish_fisher_var(w, stress).var > 2.0 * cornish_fisher_var(w, calm).var


def hourly_log_returns(symbols: list[str]) -> pd.DataFrame:
    """Aligned 1h close-to-close log returns; NaN where a symbol lacks the bar or the one before."""
    closes = {}
    for sym in symbols:
        df = pd.read_csv(SHARED_DATA / f"{sym}-1h.csv.gz")
        closes[sym] = df.set_index(pd.to_datetime(df["open_time"], unit="ms", utc=True))["close"]
    frame = pd.DataFrame(closes).asfreq("1h")
    return np.log(frame).diff()


def test_march_2020_crash_window_has_much_larger_var_than_a_calm_window() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: the real Binance klines live only in the team workspace")
    r = hourly_log_returns(["BTCUSDT", "ETHUSDT", "XRPUSDT"])
    crash = r.loc[:"2020-03-12 23:00"].tail(127).to_numpy()
    calm = r.loc[:"2020-01-31 23:00"].tail(127).to_numpy()
    assert stress_ratio(calm, crash) > 2.0
