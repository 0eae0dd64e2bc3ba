"""A run's tearsheet: the trade and drawdown statistics traders look for, from a :class:`Review`.

:func:`build_tearsheet` applies the pure functions of :mod:`bot.analytics.tearsheet` to the review's equity
curve and round trips; :func:`format_tearsheet` lays them out as text for ``bot report``.  The dashboard's
tearsheet page and ``bot report --html`` show the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.analytics.performance import simple_returns
from bot.analytics.tearsheet import (
    DailyExposure,
    DrawdownPeriod,
    TripSummary,
    daily_exposure,
    daily_returns,
    rolling_sharpe,
    rolling_volatility,
    rolling_window_bars,
    top_drawdowns,
    trip_summary,
)
from bot.reporting.review import Review
from bot.timefmt import format_duration, utc_minute

TOP_DRAWDOWNS = 5


@dataclass(frozen=True, slots=True)
class Tearsheet:
    trips: TripSummary
    drawdowns: tuple[DrawdownPeriod, ...]       # deepest first
    window: int                                 # bars in the rolling window (7 days)
    returns_ms: np.ndarray                      # the bar each return ends at
    returns: np.ndarray                         # simple returns of the equity marks
    rolling_sharpe: np.ndarray
    rolling_volatility: np.ndarray
    day_ms: np.ndarray
    daily: np.ndarray                           # UTC-day returns
    exposure: DailyExposure


def build_tearsheet(r: Review) -> Tearsheet:
    """Every tearsheet figure of the review (empty series for a run without usable equity)."""
    window = rolling_window_bars(r.log.timeframe_ms)
    usable = r.perf is not None
    returns = simple_returns(r.equity) if usable else np.zeros(0)
    days, daily = daily_returns(r.bar_ms, r.equity) if usable else (np.zeros(0, dtype=np.int64), np.zeros(0))
    return Tearsheet(
        trips=trip_summary(r.trips),
        drawdowns=tuple(top_drawdowns(r.bar_ms, r.equity, TOP_DRAWDOWNS)) if usable else (),
        window=window, returns_ms=r.bar_ms[1:], returns=returns,
        rolling_sharpe=rolling_sharpe(returns, window, r.periods),
        rolling_volatility=rolling_volatility(returns, window, r.periods),
        day_ms=days, daily=daily, exposure=daily_exposure(r.bar_ms, r.gross, r.net))


def duration(ms: float | None) -> str:
    return "-" if ms is None else format_duration(int(round(ms)))


def format_tearsheet(t: Tearsheet) -> str:
    """The trade statistics and the deepest drawdowns as text."""
    s = t.trips
    lines = ["", "Trades (closed round trips, in closing order)"]
    if s.closed == 0:
        lines.append("  no closed round trip yet")
    else:
        assert s.best is not None and s.worst is not None and s.longest is not None
        lines += [
            f"  average duration {duration(s.avg_duration_ms)}, longest {duration(s.longest_duration_ms)} "
            f"({s.longest.symbol} from {utc_minute(s.longest.open_ms)})",
            f"  best {s.best.pnl:+,.2f} ({s.best.symbol}, closed {utc_minute(s.best.close_ms)}), "
            f"worst {s.worst.pnl:+,.2f} ({s.worst.symbol}, closed {utc_minute(s.worst.close_ms)})",
            f"  longest streak: {s.win_streak} winning, {s.loss_streak} losing trips in a row"]
    lines += ["", f"Deepest drawdowns (top {TOP_DRAWDOWNS}; peak to recovery)"]
    if not t.drawdowns:
        return "\n".join(lines + ["  equity never fell below a running peak"]) + "\n"
    rows = [("", "depth", "peak", "valley", "recovered", "length")]
    rows += [(f"{i}", f"{p.depth:.2%}", utc_minute(p.peak_ms), utc_minute(p.valley_ms),
              utc_minute(p.recovery_ms) if p.recovery_ms is not None else "not yet", duration(p.length_ms))
             for i, p in enumerate(t.drawdowns, 1)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in rows]
    return "\n".join(lines) + "\n"
