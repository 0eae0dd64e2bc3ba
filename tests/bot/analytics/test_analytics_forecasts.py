"""Forecast quality on constructed forecasts whose calibration is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.analytics.forecasts import Outcomes, join_outcomes, nll_per_forecast, quality, rolling, sigma_buckets
from strategies.baselines import persistence_ewma
from strategies.metrics import gaussian_nll

H = 3_600_000
T0 = 1_704_067_200_000


def outcomes(n: int, true_sigma: float, forecast_sigma: float, seed: int = 0) -> Outcomes:
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 0.002, n)
    y = mu + rng.normal(0, true_sigma, n)
    return Outcomes(bar_ms=T0 + H * np.arange(n), symbol=np.array(["X"] * n, dtype=object), mu=mu,
                    sigma=np.full(n, forecast_sigma), y=y, base_sigma=np.full(n, true_sigma * 1.5))


def test_calibrated_forecasts_cover_68_and_95_and_have_a_flat_pit() -> None:
    q = quality(outcomes(20_000, 0.01, 0.01))
    assert q is not None
    assert q.cov68 == pytest.approx(0.68, abs=0.01) and q.cov95 == pytest.approx(0.95, abs=0.005)
    for level, observed in q.reliability:
        assert observed == pytest.approx(level, abs=0.015)
    assert max(abs(h - 0.1) for h in q.pit_histogram) < 0.01
    # The model (right σ) beats a baseline whose σ is 1.5 times too wide, on the same forecasts.
    assert q.model_nll_same == q.nll and q.baseline_nll is not None and q.baseline_nll > q.nll


def test_too_narrow_sigma_under_covers_and_bends_the_reliability_curve() -> None:
    q = quality(outcomes(20_000, 0.01, 0.005))
    assert q is not None
    assert q.cov68 == pytest.approx(2 * 0.5 * math.erf(0.994458 / 2 / math.sqrt(2)), abs=0.01)   # ≈ 0.38
    assert q.cov68 < 0.45 and q.cov95 < 0.70
    low, high = dict(q.reliability)[0.05], dict(q.reliability)[0.95]
    assert low > 0.15 and high < 0.85          # outcomes land in the tails far too often
    assert q.pit_histogram[0] > 0.2 and q.pit_histogram[-1] > 0.2


def test_rolling_windows_equal_the_whole_run_scores_on_each_window() -> None:
    o = outcomes(600, 0.01, 0.012)
    r = rolling(o, 168, H)
    assert r.bar_ms.size == 600
    for i in (0, 100, 167, 168, 599):
        lo = max(0, i - 167)
        part = slice(lo, i + 1)
        assert r.nll[i] == pytest.approx(gaussian_nll(o.mu[part], o.sigma[part], o.y[part]), rel=1e-12)
        z = np.abs(o.y[part] - o.mu[part]) / o.sigma[part]
        assert r.cov95[i] == pytest.approx(np.mean(z <= 1.959963984540054))
        assert r.baseline_nll[i] == pytest.approx(
            gaussian_nll(np.zeros(i + 1 - lo), o.base_sigma[part], o.y[part]), rel=1e-12)
    np.testing.assert_allclose(nll_per_forecast(o.mu, o.sigma, o.y).mean(), gaussian_nll(o.mu, o.sigma, o.y))


def test_join_pairs_each_forecast_with_the_next_close_and_the_ewma_baseline() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    series = {T0 + H * i: float(c) for i, c in enumerate(closes)}
    del series[T0 + H * 59]                           # the last forecast has no outcome
    forecasts = [(T0 + H * i, "X", 0.001, 0.01) for i in range(59)] + [(T0, "Y", 0.0, 0.01)]
    o = join_outcomes(forecasts, {"X": series}, H)
    assert len(o) == 58 and set(o.symbol) == {"X"}
    np.testing.assert_allclose(o.y, np.diff(np.log(closes[:59])))
    _, base = persistence_ewma(np.diff(np.log(closes[:59])), 0.94, 24)
    np.testing.assert_allclose(o.base_sigma, base)    # NaN for the first 24, the EWMA after
    assert np.isnan(o.base_sigma[:24]).all() and np.isfinite(o.base_sigma[24:]).all()


def test_pnl_by_sigma_quintile() -> None:
    sigma = np.arange(1, 11, dtype=float)
    pnl = np.array([1, 1, -2, 0, 0, 0, 5, 5, -1, -1], dtype=float)
    held = pnl != 0
    buckets = sigma_buckets(sigma, pnl, held, pnl / 100)
    assert [b.forecasts for b in buckets] == [2, 2, 2, 2, 2]
    assert [b.pnl for b in buckets] == [2, -2, 0, 10, -2]
    assert [b.held for b in buckets] == [2, 1, 0, 2, 2]
    assert buckets[0].lo == 1 and buckets[-1].hi == 10
