"""The tearsheet's figures of an equity curve and its round trips: drawdown periods, rolling ratios, trade
durations and streaks, daily aggregates.

Conventions (quantstats' where it has the same figure, so the tests compare the two on one curve):

    drawdown period  from the last bar at a running peak (``peak_ms``) through the bars below it to the first
                     bar back at that peak (``recovery_ms``; None: not recovered by the last mark).  Its valley
                     is its deepest bar (the first, on a tie); depth = 1 − E_valley / E_peak.  quantstats'
                     ``drawdown_details`` dates the same period by its first and last bar *below* the peak.
    rolling Sharpe   mean(r) / std(r, ddof=1) · √N over the last ``window`` returns (quantstats'
                     ``rolling_sharpe``); rolling volatility std(r, ddof=1) · √N (``rolling_volatility``)
    streak           the longest run of consecutive positive (wins) or negative (losses) values; a zero ends
                     both (quantstats' ``consecutive_wins`` / ``consecutive_losses`` on a series)
    trip duration    close − open of a closed round trip (open trips are still running: not counted)
    daily            by the UTC calendar day of the mark: a day's return is its last mark over the previous
                     day's last mark (the first day over the first mark); exposure is averaged over the day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from bot.analytics.trades import RoundTrip

MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class DrawdownPeriod:
    peak_ms: int                # the last mark at the running peak before the fall
    valley_ms: int              # the deepest mark
    recovery_ms: int | None     # the first mark back at the peak; None: still under water at the end
    depth: float                # 1 − valley / peak, in (0, 1]
    bars_under: int             # marks below the peak
    length_ms: int              # peak to recovery (to the last mark when not recovered)


def drawdown_periods(bar_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray) -> list[DrawdownPeriod]:
    """Every drawdown period of the curve, in time order."""
    t = np.asarray(bar_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    if t.shape != e.shape:
        raise ValueError(f"bar_ms and equity differ in length: {t.size} != {e.size}")
    if e.size == 0:
        return []
    peak = np.maximum.accumulate(e)
    under = e < peak
    out: list[DrawdownPeriod] = []
    i, n = 0, e.size
    while i < n:
        if not under[i]:
            i += 1
            continue
        start = i                               # first mark under water; the peak is the mark before it
        while i < n and under[i]:
            i += 1
        end = i                                 # first mark back at the peak, or n
        dd = 1.0 - e[start:end] / peak[start:end]
        valley = start + int(np.argmax(dd))
        recovered = end < n
        out.append(DrawdownPeriod(
            peak_ms=int(t[start - 1]), valley_ms=int(t[valley]), recovery_ms=int(t[end]) if recovered else None,
            depth=float(dd[valley - start]), bars_under=end - start,
            length_ms=int(t[end] if recovered else t[-1]) - int(t[start - 1])))
    return out


def top_drawdowns(bar_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray,
                  n: int = 5) -> list[DrawdownPeriod]:
    """The ``n`` deepest drawdown periods, deepest first (the earlier one first on equal depth)."""
    periods = drawdown_periods(bar_ms, equity)
    return sorted(periods, key=lambda p: (-p.depth, p.peak_ms))[:n]


def rolling_sharpe(returns: Sequence[float] | np.ndarray, window: int, periods: float) -> np.ndarray:
    """Annualised Sharpe over each trailing ``window`` of returns; NaN before the first full window and where
    the window's standard deviation is zero."""
    mean, sd = _rolling_mean_sd(returns, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sd > 0, mean / sd, np.nan) * math.sqrt(periods)
    return out


def rolling_volatility(returns: Sequence[float] | np.ndarray, window: int, periods: float) -> np.ndarray:
    """Annualised standard deviation (ddof=1) over each trailing ``window`` of returns; NaN before it is full."""
    _, sd = _rolling_mean_sd(returns, window)
    return sd * math.sqrt(periods)


def _rolling_mean_sd(returns: Sequence[float] | np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(returns, dtype=np.float64)
    if window < 2:
        raise ValueError(f"a rolling window needs at least 2 returns, got {window}")
    mean = np.full(r.size, np.nan)
    sd = np.full(r.size, np.nan)
    if r.size >= window:
        # Each window's own mean and deviation (not running sums): no cancellation on long, flat stretches.
        w = np.lib.stride_tricks.sliding_window_view(r, window)
        mean[window - 1:] = w.mean(axis=1)
        sd[window - 1:] = w.std(axis=1, ddof=1)
    return mean, sd


def rolling_window_bars(timeframe_ms: int, days: int = 7) -> int:
    """Bars in ``days`` days (168 for hourly bars), at least 2."""
    return max(2, round(days * MS_PER_DAY / timeframe_ms))


def longest_streaks(values: Sequence[float] | Sequence[Decimal]) -> tuple[int, int]:
    """(longest run of positive values, longest run of negative values); a zero ends both."""
    wins = losses = run_w = run_l = 0
    for v in values:
        run_w = run_w + 1 if v > 0 else 0
        run_l = run_l + 1 if v < 0 else 0
        wins, losses = max(wins, run_w), max(losses, run_l)
    return wins, losses


@dataclass(frozen=True, slots=True)
class TripSummary:
    closed: int
    avg_duration_ms: float | None
    longest_duration_ms: int | None
    longest: RoundTrip | None
    best: RoundTrip | None          # the closed trip with the highest PnL (the earlier on a tie)
    worst: RoundTrip | None
    win_streak: int                 # consecutive winning closed trips, in closing order
    loss_streak: int


def trip_summary(trips: Sequence[RoundTrip]) -> TripSummary:
    """Durations, best and worst trip, and streaks of the closed trips among ``trips``."""
    closed = sorted((t for t in trips if t.close_ms is not None), key=lambda t: (t.close_ms or 0, t.open_ms))
    if not closed:
        return TripSummary(0, None, None, None, None, None, 0, 0)
    durations = [(t.close_ms or 0) - t.open_ms for t in closed]
    longest = max(range(len(closed)), key=lambda i: (durations[i], -i))
    best = max(closed, key=lambda t: (t.pnl, -(t.close_ms or 0)))
    worst = min(closed, key=lambda t: (t.pnl, t.close_ms or 0))
    wins, losses = longest_streaks([t.pnl for t in closed])
    return TripSummary(len(closed), sum(durations) / len(durations), durations[longest], closed[longest], best,
                       worst, wins, losses)


def daily_returns(bar_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray,
                  start: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(day_ms, return) per UTC day with a mark: each day's last mark against the previous day's, the first
    day's against ``start`` (the starting cash) or, without one, the first mark; the returns compound to the
    total return."""
    t = np.asarray(bar_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    days = t // MS_PER_DAY
    last = np.nonzero(np.append(days[1:] != days[:-1], True))[0]     # each day's last mark
    closes = e[last]
    prev = np.concatenate(([e[0] if start is None else start], closes[:-1]))
    return days[last] * MS_PER_DAY, closes / prev - 1.0


@dataclass(frozen=True, slots=True)
class DailyExposure:
    day_ms: np.ndarray
    gross_mean: np.ndarray      # mean over the day's marks of Σ|q·p| / E
    gross_max: np.ndarray
    net_mean: np.ndarray        # mean over the day's marks of Σ q·p / E
    held: np.ndarray            # share of the day's marks holding a position


def daily_exposure(bar_ms: Sequence[int] | np.ndarray, gross: Sequence[float] | np.ndarray,
                   net: Sequence[float] | np.ndarray) -> DailyExposure:
    """Exposure per UTC day: a year of hourly bars in 365 points a chart can show."""
    t = np.asarray(bar_ms, dtype=np.int64)
    g = np.asarray(gross, dtype=np.float64)
    x = np.asarray(net, dtype=np.float64)
    if not t.size == g.size == x.size:
        raise ValueError("bar_ms, gross and net must have one value per mark")
    days, index = np.unique(t // MS_PER_DAY, return_inverse=True)
    count = np.bincount(index, minlength=days.size).astype(np.float64)
    gmax = np.full(days.size, -np.inf)
    np.maximum.at(gmax, index, g)
    def mean(w: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=w, minlength=days.size) / count

    return DailyExposure(day_ms=days * MS_PER_DAY, gross_mean=mean(g), gross_max=gmax, net_mean=mean(x),
                         held=mean((g > 0).astype(np.float64)))
