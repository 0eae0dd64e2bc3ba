"""Tearsheet figures against quantstats on the same curve, worked examples, and their properties."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.analytics.performance import drawdown_series, max_drawdown, periods_per_year, simple_returns
from bot.analytics.tearsheet import (
    MS_PER_DAY,
    daily_exposure,
    daily_returns,
    drawdown_periods,
    longest_streaks,
    rolling_sharpe,
    rolling_volatility,
    rolling_window_bars,
    top_drawdowns,
    trip_summary,
)
from bot.analytics.trades import RoundTrip

H = 3_600_000
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC
N = periods_per_year(H)
D = Decimal

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)   # quantstats' import chain, not ours
    warnings.simplefilter("ignore", FutureWarning)
    import quantstats as qs


def curve(seed: int, n: int, step: int, drift: float = 1e-4, vol: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = rng.normal(drift, vol, n - 1)
    return T0 + step * np.arange(n), 10_000 * np.concatenate(([1.0], np.cumprod(1 + r)))


def dates(bar_ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(bar_ms, unit="ms"))


def day(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%d")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_drawdown_periods_match_quantstats_drawdown_details(seed: int) -> None:
    # Daily marks: quantstats dates the periods by day, so every date compares exactly.
    bars, eq = curve(seed, 600, MS_PER_DAY, drift=2e-3)
    ours = drawdown_periods(bars, eq)
    theirs = qs.stats.drawdown_details(pd.Series(-drawdown_series(eq), index=dates(bars)))
    assert len(ours) == len(theirs) > 5
    index = {int(b): i for i, b in enumerate(bars)}
    for p, (_, q) in zip(ours, theirs.iterrows()):
        first_under = int(bars[index[p.peak_ms] + 1])
        last_under = int(bars[index[p.recovery_ms] - 1]) if p.recovery_ms is not None else int(bars[-1])
        assert (day(first_under), day(p.valley_ms), day(last_under)) == (q["start"], q["valley"], q["end"])
        assert p.depth == pytest.approx(-q["max drawdown"] / 100, rel=1e-9)
        assert p.bars_under == (last_under - first_under) // MS_PER_DAY + 1 == q["days"]


def test_the_deepest_period_is_the_max_drawdown_and_top_five_are_sorted() -> None:
    bars, eq = curve(7, 5000, H, drift=2e-4, vol=4e-3)
    top = top_drawdowns(bars, eq)
    dd = max_drawdown(bars, eq)
    assert dd is not None and len(top) == 5
    assert (top[0].depth, top[0].peak_ms, top[0].valley_ms, top[0].recovery_ms) == \
        (pytest.approx(dd.depth, rel=1e-12), dd.peak_ms, dd.trough_ms, dd.recovery_ms)
    assert [p.depth for p in top] == sorted((p.depth for p in top), reverse=True)
    assert top[4].depth >= max(p.depth for p in drawdown_periods(bars, eq) if p not in top)


def test_drawdown_periods_worked_example() -> None:
    bars = T0 + H * np.arange(9)
    eq = [100, 90, 95, 100, 120, 60, 90, 80, 100.0]
    a, b = drawdown_periods(bars, eq)
    assert (a.peak_ms, a.valley_ms, a.recovery_ms, a.bars_under, a.length_ms) == (T0, T0 + H, T0 + 3 * H, 2, 3 * H)
    assert a.depth == pytest.approx(0.1)
    # Not recovered: the period runs to the last mark.
    assert (b.peak_ms, b.valley_ms, b.recovery_ms, b.bars_under, b.length_ms) == (T0 + 4 * H, T0 + 5 * H, None, 4,
                                                                                  4 * H)
    assert b.depth == pytest.approx(0.5)
    assert top_drawdowns(bars, eq, 1) == [b]
    assert drawdown_periods(bars[:1], eq[:1]) == [] and drawdown_periods([], []) == []
    with pytest.raises(ValueError):
        drawdown_periods(bars[:2], eq)


@pytest.mark.parametrize("seed", [1, 2])
def test_rolling_sharpe_and_volatility_match_quantstats(seed: int) -> None:
    bars, eq = curve(seed, 1500, H, drift=2e-5, vol=4e-3)
    r = simple_returns(eq)
    series = pd.Series(r, index=dates(bars[1:]))
    window = rolling_window_bars(H)
    assert window == 168
    ours = rolling_sharpe(r, window, N)
    theirs = qs.stats.rolling_sharpe(series, rolling_period=window, periods_per_year=N).to_numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, equal_nan=True)
    assert np.isnan(ours[: window - 1]).all() and np.isfinite(ours[window - 1:]).all()
    vol = rolling_volatility(r, window, N)
    np.testing.assert_allclose(vol, qs.stats.rolling_volatility(series, rolling_period=window,
                                                                periods_per_year=N).to_numpy(),
                               rtol=1e-9, equal_nan=True)


def test_rolling_figures_of_short_or_flat_series() -> None:
    assert np.isnan(rolling_sharpe([0.01, 0.02], 3, N)).all()
    flat = rolling_sharpe([0.0] * 5, 3, N)
    assert np.isnan(flat).all()                           # no deviation: no ratio, never ±inf
    assert rolling_volatility([0.0] * 5, 3, N)[2:].tolist() == [0.0] * 3
    with pytest.raises(ValueError):
        rolling_sharpe([0.1, 0.2], 1, N)
    assert rolling_window_bars(MS_PER_DAY) == 7 and rolling_window_bars(7 * MS_PER_DAY, days=1) == 2


values = st.lists(st.sampled_from([-2.0, -1.0, 0.0, 1.0, 3.0]), min_size=1, max_size=80)


@given(values)
@settings(max_examples=200, deadline=None)
def test_streaks_match_quantstats_consecutive_wins_and_losses(v: list[float]) -> None:
    series = pd.Series(v, index=pd.date_range("2024-01-01", periods=len(v), freq="D"))
    wins, losses = longest_streaks(v)
    assert wins == int(qs.stats.consecutive_wins(series, prepare_returns=False))
    assert losses == int(qs.stats.consecutive_losses(series, prepare_returns=False))


@given(values)
@settings(max_examples=200, deadline=None)
def test_a_streak_is_a_run_of_that_sign(v: list[float]) -> None:
    wins, losses = longest_streaks(v)
    signs = "".join("w" if x > 0 else "l" if x < 0 else "." for x in v)
    assert ("w" * wins in signs) and ("w" * (wins + 1) not in signs)
    assert ("l" * losses in signs) and ("l" * (losses + 1) not in signs)


def trip(open_h: int, close_h: int | None, pnl: str, symbol: str = "BTC/USDT") -> RoundTrip:
    return RoundTrip(symbol, 1, T0 + open_h * H, None if close_h is None else T0 + close_h * H, D(1), D(100),
                     None if close_h is None else D(101), D("0.1"), D(0), D(pnl), 2)


def test_trip_summary_worked_example() -> None:
    trips = [trip(0, 3, "5"), trip(1, 2, "-1"), trip(4, 10, "-2"), trip(5, 6, "-0.5"), trip(7, 9, "4"),
             trip(11, None, "-50")]                  # open: not counted
    s = trip_summary(trips)
    # Closing order: -1 (h2), +5 (h3), -0.5 (h6), +4 (h9), -2 (h10).
    assert s.closed == 5 and s.win_streak == 1 and s.loss_streak == 1
    assert s.avg_duration_ms == (3 + 1 + 6 + 1 + 2) * H / 5 and s.longest_duration_ms == 6 * H
    assert s.longest is trips[2] and s.best is trips[0] and s.worst is trips[2]
    s2 = trip_summary([trip(0, 1, "1"), trip(1, 2, "2"), trip(2, 3, "0"), trip(3, 4, "-1"), trip(4, 5, "-1")])
    assert (s2.win_streak, s2.loss_streak) == (2, 2)
    empty = trip_summary([trip(0, None, "3")])
    assert (empty.closed, empty.avg_duration_ms, empty.best, empty.win_streak) == (0, None, None, 0)


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(1, 300), st.integers(-1000, 1000)), min_size=1,
                max_size=40))
@settings(max_examples=150, deadline=None)
def test_trip_summary_properties(rows: list[tuple[int, int, int]]) -> None:
    trips = [trip(o, o + d, str(p)) for o, d, p in rows]
    s = trip_summary(trips)
    assert s.best is not None and s.worst is not None and s.longest_duration_ms is not None
    assert s.worst.pnl <= s.best.pnl and all(s.worst.pnl <= t.pnl <= s.best.pnl for t in trips)
    assert s.avg_duration_ms is not None and H <= s.avg_duration_ms <= s.longest_duration_ms
    assert s.win_streak <= sum(t.pnl > 0 for t in trips) and s.loss_streak <= sum(t.pnl < 0 for t in trips)


def test_daily_returns_compound_to_the_total() -> None:
    bars = np.array([T0, T0 + 23 * H, T0 + 24 * H, T0 + 47 * H, T0 + 72 * H])
    days, r = daily_returns(bars, [100.0, 110.0, 99.0, 121.0, 121.0])
    assert days.tolist() == [T0, T0 + MS_PER_DAY, T0 + 3 * MS_PER_DAY]
    np.testing.assert_allclose(r, [0.1, 0.1, 0.0])
    bars, eq = curve(3, 800, H)
    _, r = daily_returns(bars, eq)
    assert math.prod(1 + r) == pytest.approx(eq[-1] / eq[0], rel=1e-12) and r.size == 34


def test_daily_exposure_averages_each_utc_day() -> None:
    bars = np.array([T0, T0 + H, T0 + 2 * H, T0 + 24 * H])
    d = daily_exposure(bars, [0.0, 1.0, 0.5, 2.0], [0.0, -1.0, 0.5, 2.0])
    assert d.day_ms.tolist() == [T0, T0 + MS_PER_DAY]
    np.testing.assert_allclose(d.gross_mean, [0.5, 2.0])
    np.testing.assert_allclose(d.gross_max, [1.0, 2.0])
    np.testing.assert_allclose(d.net_mean, [-0.5 / 3, 2.0])
    np.testing.assert_allclose(d.held, [2 / 3, 1.0])
    # A year of hourly marks becomes one point per day.
    year = T0 + H * np.arange(8760)
    assert daily_exposure(year, np.ones(8760), np.ones(8760)).day_ms.size == 365
    with pytest.raises(ValueError):
        daily_exposure(bars, [0.0], [0.0])
