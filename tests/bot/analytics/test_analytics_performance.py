"""Performance metrics against quantstats on the same equity curve, and their properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.analytics.performance import (
    MS_PER_YEAR,
    buy_and_hold,
    drawdown_series,
    exposure_series,
    max_drawdown,
    monthly_returns,
    performance,
    periods_per_year,
    simple_returns,
    time_in_market,
)

H = 3_600_000
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC
N = periods_per_year(H)

with warnings.catch_warnings():
    # quantstats' import chain (seaborn, yfinance) may warn on newer pandas/matplotlib: not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
    import quantstats as qs


def curve(seed: int, n: int = 2000, drift: float = 2e-5, vol: float = 4e-3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = rng.normal(drift, vol, n - 1)
    return T0 + H * np.arange(n), 10_000 * np.concatenate(([1.0], np.cumprod(1 + r)))


def qs_returns(bar_ms: np.ndarray, equity: np.ndarray) -> pd.Series:
    index = pd.DatetimeIndex(pd.to_datetime(bar_ms[1:], unit="ms", utc=True).tz_localize(None))
    return pd.Series(simple_returns(equity), index=index)


def test_hourly_bars_make_8760_a_year() -> None:
    assert N == 8760 and periods_per_year(86_400_000) == 365
    with pytest.raises(ValueError):
        periods_per_year(0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_match_quantstats(seed: int) -> None:
    bars, eq = curve(seed)
    p = performance(bars, eq, N)
    r = qs_returns(bars, eq)
    rel = 1e-9
    assert p.total_return == pytest.approx(float(qs.stats.comp(r)), rel=rel)
    assert p.sharpe == pytest.approx(float(qs.stats.sharpe(r, periods=int(N))), rel=rel)
    assert p.sortino == pytest.approx(float(qs.stats.sortino(r, periods=int(N))), rel=rel)
    assert p.volatility == pytest.approx(float(qs.stats.volatility(r, periods=int(N))), rel=rel)
    # quantstats counts years as returns / periods: the calendar time of a gap-free hourly curve.
    assert p.cagr == pytest.approx(float(qs.stats.cagr(r, periods=int(N), compounded=True)), rel=rel)
    assert p.max_drawdown is not None
    assert p.max_drawdown.depth == pytest.approx(-float(qs.stats.max_drawdown(r)), rel=rel)
    assert p.calmar == pytest.approx(float(qs.stats.calmar(r, periods=int(N))), rel=rel)
    dd_qs = -qs.stats.to_drawdown_series(r).to_numpy()
    np.testing.assert_allclose(drawdown_series(eq)[1:], dd_qs, rtol=0, atol=1e-12)


def test_drawdown_dates_and_recovery() -> None:
    bars = T0 + H * np.arange(7)
    eq = np.array([100, 120, 90, 60, 110, 125, 130.0])
    dd = max_drawdown(bars, eq)
    assert dd is not None
    assert (dd.depth, dd.peak_ms, dd.trough_ms, dd.recovery_ms) == (0.5, T0 + H, T0 + 3 * H, T0 + 5 * H)
    assert max_drawdown(bars[:2], eq[:2]) is None
    unrecovered = max_drawdown(bars[:4], eq[:4])
    assert unrecovered is not None and unrecovered.recovery_ms is None


def test_cagr_is_on_calendar_time_and_ratios_need_a_denominator() -> None:
    p = performance([T0, T0 + MS_PER_YEAR // 2], [100.0, 121.0], N)
    assert p.cagr == pytest.approx(0.21 * (2 + 0.21))     # 1.21² − 1 over half a year
    flat = performance(T0 + H * np.arange(5), [100.0] * 5, N)
    assert (flat.sharpe, flat.sortino, flat.calmar, flat.max_drawdown) == (None, None, None, None)
    assert flat.volatility == 0.0 and flat.total_return == 0.0
    up = performance(T0 + H * np.arange(3), [100.0, 101.0, 103.0], N)
    assert up.sortino is None and up.sharpe is not None and up.sharpe > 0


equities = st.lists(st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=2, max_size=60)


@given(equities)
@settings(max_examples=200, deadline=None)
def test_drawdown_is_a_fraction_and_returns_compose(values: list[float]) -> None:
    eq = np.array(values)
    bars = T0 + H * np.arange(eq.size)
    p = performance(bars, eq, N)
    dd = drawdown_series(eq)
    assert np.all(dd >= 0) and np.all(dd < 1)
    depth = 0.0 if p.max_drawdown is None else p.max_drawdown.depth
    assert 0 <= depth < 1 and depth == pytest.approx(float(dd.max()), abs=1e-15)
    assert math.prod(1 + simple_returns(eq)) - 1 == pytest.approx(p.total_return, rel=1e-9, abs=1e-9)
    months = monthly_returns(bars, eq)
    assert math.prod(1 + v for v in months.values()) - 1 == pytest.approx(p.total_return, rel=1e-9, abs=1e-9)


def test_monthly_returns_split_at_utc_month_ends() -> None:
    jan31 = 1_706_655_600_000   # 2024-01-30 23:00 UTC
    bars = [jan31, jan31 + 24 * H, jan31 + 25 * H]   # 2024-01-31 23:00, 2024-02-01 00:00
    assert monthly_returns(bars, [100.0, 110.0, 99.0]) == {(2024, 1): pytest.approx(0.1), (2024, 2): pytest.approx(-0.1)}


def test_exposure_time_in_market_and_buy_and_hold() -> None:
    gross, net = exposure_series([1, 2, 3], [100.0, 100.0, 200.0], {2: [(1.0, 50.0), (-2.0, 10.0)], 3: [(1.0, 100.0)]})
    np.testing.assert_allclose(gross, [0.0, 0.7, 0.5])
    np.testing.assert_allclose(net, [0.0, 0.3, 0.5])
    assert time_in_market(gross) == pytest.approx(2 / 3)
    np.testing.assert_allclose(buy_and_hold({"A": [10, 20, 5], "B": [1, 1, 3]}), [1.0, 1.5, 1.75])
    with pytest.raises(ValueError):
        buy_and_hold({"A": [1, 2], "B": [1]})
