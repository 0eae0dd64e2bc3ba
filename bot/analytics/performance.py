"""Performance of an equity curve: returns, risk-adjusted ratios, drawdowns, exposure, buy-and-hold.

Conventions (the ones quantstats uses, so its figures on the same curve agree; risk-free rate 0):

    r_t        = E_t / E_{t−1} − 1, simple returns of the equity marked at each bar's close
    N          = bars per year = 365 × 24 h / bar length (8760 for hourly bars)
    total      = E_end / E_0 − 1
    years      = (t_end − t_0) / 365 days, calendar time between the first and last mark
    CAGR       = (E_end / E_0)^(1/years) − 1     (with no missing bars years = n_returns / N)
    volatility = std(r, ddof=1) · √N
    Sharpe     = mean(r) / std(r, ddof=1) · √N
    Sortino    = mean(r) / √(Σ_{r_t<0} r_t² / n) · √N   (downside deviation over all n bars)
    drawdown_t = 1 − E_t / max_{s≤t} E_s ∈ [0, 1]; max drawdown is its largest value, dated by the
                 peak before it, the trough, and the first later bar back at the peak (recovery)
    Calmar     = CAGR / max drawdown

A ratio whose denominator is zero (or that needs more bars than there are) is None, never ±inf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

MS_PER_YEAR = 365 * 24 * 3_600_000


def periods_per_year(timeframe_ms: int) -> float:
    """Bars per 365-day year: 8760 for 1 h, 365 for 1 d."""
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, got {timeframe_ms}")
    return MS_PER_YEAR / timeframe_ms


@dataclass(frozen=True, slots=True)
class Drawdown:
    depth: float                # fraction of the peak, in [0, 1]
    peak_ms: int
    trough_ms: int
    recovery_ms: int | None     # first bar back at the peak; None: not recovered by the end


@dataclass(frozen=True, slots=True)
class Performance:
    bars: int                   # equity marks
    start_ms: int
    end_ms: int
    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: Drawdown | None   # None: equity never fell below a running peak


def simple_returns(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """r_t = E_t / E_{t−1} − 1 (one fewer than the marks)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.ndim != 1 or e.size < 1 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("equity must be a non-empty 1-D array of positive finite values")
    return e[1:] / e[:-1] - 1.0


def drawdown_series(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """1 − E_t / running peak: 0 at a new high, in [0, 1] for positive equity."""
    e = np.asarray(equity, dtype=np.float64)
    return 1.0 - e / np.maximum.accumulate(e)


def max_drawdown(bar_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray) -> Drawdown | None:
    """The deepest drawdown with its peak, trough and recovery bars."""
    e = np.asarray(equity, dtype=np.float64)
    t = np.asarray(bar_ms, dtype=np.int64)
    if e.size == 0:
        return None
    dd = drawdown_series(e)
    trough = int(np.argmax(dd))
    if dd[trough] <= 0:
        return None
    peak = int(np.argmax(e[: trough + 1]))
    later = np.nonzero(e[trough:] >= e[peak])[0]
    recovery = int(t[trough + later[0]]) if later.size else None
    return Drawdown(float(dd[trough]), int(t[peak]), int(t[trough]), recovery)


def sharpe(returns: np.ndarray, periods: float) -> float | None:
    """Annualised Sharpe ratio, sample standard deviation, risk-free rate 0."""
    if returns.size < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    return None if sd == 0 else float(np.mean(returns)) / sd * math.sqrt(periods)


def sortino(returns: np.ndarray, periods: float) -> float | None:
    """Annualised Sortino ratio: the downside deviation averages squared losses over all bars."""
    if returns.size < 1:
        return None
    downside = math.sqrt(float(np.sum(np.minimum(returns, 0.0) ** 2)) / returns.size)
    return None if downside == 0 else float(np.mean(returns)) / downside * math.sqrt(periods)


def volatility(returns: np.ndarray, periods: float) -> float | None:
    """Annualised standard deviation of the returns (ddof=1)."""
    return None if returns.size < 2 else float(np.std(returns, ddof=1)) * math.sqrt(periods)


def cagr(total_return: float, start_ms: int, end_ms: int) -> float | None:
    """Compound annual growth over calendar time; None over zero time; inf when it overflows."""
    years = (end_ms - start_ms) / MS_PER_YEAR
    if years <= 0:
        return None
    growth = 1.0 + total_return
    if growth <= 0:
        return -1.0
    try:
        return math.exp(math.log(growth) / years) - 1.0
    except OverflowError:
        return math.inf


def performance(bar_ms: Sequence[int] | np.ndarray, equity: Sequence[float] | np.ndarray,
                periods: float) -> Performance:
    """Every figure above for one equity curve (marks at ``bar_ms``, ascending)."""
    e = np.asarray(equity, dtype=np.float64)
    t = np.asarray(bar_ms, dtype=np.int64)
    if t.shape != e.shape:
        raise ValueError(f"bar_ms and equity differ in length: {t.size} != {e.size}")
    r = simple_returns(e)
    total = float(e[-1] / e[0] - 1.0)
    growth = cagr(total, int(t[0]), int(t[-1]))
    dd = max_drawdown(t, e)
    calmar = None if dd is None or growth is None or not math.isfinite(growth) else growth / dd.depth
    return Performance(bars=int(e.size), start_ms=int(t[0]), end_ms=int(t[-1]), total_return=total,
                       cagr=growth, volatility=volatility(r, periods), sharpe=sharpe(r, periods),
                       sortino=sortino(r, periods), calmar=calmar, max_drawdown=dd)


def monthly_returns(bar_ms: Sequence[int] | np.ndarray,
                    equity: Sequence[float] | np.ndarray) -> dict[tuple[int, int], float]:
    """{(year, month): return} by UTC calendar month of the mark: each month's last mark over the
    previous month's last mark (the first month over the first mark).  They compound to the total."""
    out: dict[tuple[int, int], float] = {}
    base = float(equity[0])
    last: dict[tuple[int, int], float] = {}
    for ms, value in zip(bar_ms, equity):
        d = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
        last[(d.year, d.month)] = float(value)
    for key in sorted(last):
        out[key] = last[key] / base - 1.0
        base = last[key]
    return out


def exposure_series(bar_ms: Sequence[int], equity: Sequence[float],
                    positions: Mapping[int, Sequence[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """(gross, net) exposure over equity at each mark from ``positions[bar_ms] = [(qty, mark), ...]``:
    gross = Σ|q·p| / E, net = Σ q·p / E (negative: net short)."""
    gross = np.zeros(len(bar_ms))
    net = np.zeros(len(bar_ms))
    for i, (ms, eq) in enumerate(zip(bar_ms, equity)):
        values = [q * p for q, p in positions.get(ms, ())]
        if eq > 0:
            gross[i] = sum(abs(v) for v in values) / eq
            net[i] = sum(values) / eq
    return gross, net


def time_in_market(gross_exposure: np.ndarray) -> float:
    """Share of marks holding any position."""
    return float(np.mean(gross_exposure > 0)) if gross_exposure.size else 0.0


def buy_and_hold(closes: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Equal-weight buy-and-hold value relative to the start: (1/n) Σ_s close_s,t / close_s,0, no costs.
    Each sequence holds one symbol's closes at the same marks."""
    if not closes:
        raise ValueError("buy-and-hold needs at least one symbol")
    arrays = [np.asarray(c, dtype=np.float64) for c in closes.values()]
    if len({a.size for a in arrays}) != 1:
        raise ValueError("buy-and-hold closes must be aligned to the same marks")
    return np.mean([a / a[0] for a in arrays], axis=0)
