"""A seeded stochastic model of hourly crypto OHLCV with the usual stylized facts.

For symbols ``i = 1..N`` and bars ``t`` (UTC hour of the bar's open ``H(t)``)::

    z[i,t]  = √ρ · e_m[t] + √(1−ρ) · e_i[t]           e ~ Student-t(ν), scaled to unit variance
    u[i,t]  = √h[i,t] · z[i,t]                         deseasonalised log return
    h[i,t]  = ω + α · u[i,t−1]² + β · h[i,t−1]         GARCH(1,1), h[i,0] = σ²,  ω = σ²(1−α−β)
    r[i,t]  = k_i · √(Δ/1h) · s_vol(H) · u[i,t]        log return open → close
    s_vol(H)² = 1 + a_vol · cos(2π (H − H_peak) / 24)  (mean 1 over the day)

* **Fat tails**: Student-t innovations, ``ν = 4`` (infinite fourth moment, so the
  sample excess kurtosis of hourly returns is large, as on Binance).
* **Volatility clustering**: GARCH(1,1) with ``α = 0.08``, ``β = 0.90`` and an
  unconditional hourly volatility ``σ = 0.6 %`` (scaled by ``k_i``: 1 for BTC,
  1.25 for ETH, 1.5 for the rest).
* **Common market factor**: the shared shock ``e_m`` gives every pair of symbols
  an innovation correlation of ``ρ = 0.6``.
* **Daily seasonality**: volatility (``a_vol = 0.35``) and volume
  (``a_volume = 0.5``) peak at ``H_peak = 15`` UTC (US and European sessions
  overlap) and trough twelve hours later.
* **Intra-bar range**: high and low are the extremes of a Brownian bridge from
  open to close with the bar's variance ``v``, drawn exactly:
  ``max = (x + √(x² − 2v·ln U₁)) / 2`` and ``min = (x − √(x² − 2v·ln U₂)) / 2`` for a
  log move ``x``, so ``low ≤ min(open, close) ≤ max(open, close) ≤ high`` always.
* **Volume** (base asset): a quote notional per hour (30 M for BTC, 15 M for ETH,
  2 M otherwise) divided by the price, times the volume seasonality, times
  ``√(h/σ²)`` (busier in volatile regimes), times ``exp(0.5 (|z| − E|z|))``
  (busier on big moves), times log-normal noise (σ = 0.25).

Each bar opens at the previous close.  Prices start at ``START_PRICES`` (BTC
30000, ETH 2000, XRP 0.5, anything else 10) and live on a fixed tick per symbol
of about six significant digits at the start (at least two decimals); high is
rounded up and low down to the tick, so rounding never breaks OHLC consistency.
The output is a pure function of ``(symbols in order, n_bars, start_ms,
timeframe_ms, seed, model)``.

The conditional mean of every return is zero: nothing in the past predicts the
next return's sign (GARCH and the seasonality move only its size), so no
strategy has an edge on this market before costs.  :func:`generate_lead_lag_market`
plants one: the second symbol's next return is ``beta`` (0.3) times the first
symbol's last return plus its own GARCH-t shock, a lead-lag that a model
reading both symbols can learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bot.feeds.replay.csvdata import Series

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
START_PRICES: dict[str, float] = {"BTC": 30000.0, "ETH": 2000.0, "XRP": 0.5}
DEFAULT_START_PRICE = 10.0


@dataclass(frozen=True, slots=True)
class MarketModel:
    """Parameters of the synthetic market (per hour; see the module docstring)."""

    nu: float = 4.0
    alpha: float = 0.08
    beta: float = 0.90
    hourly_vol: float = 0.006
    market_corr: float = 0.6
    vol_season: float = 0.35
    volume_season: float = 0.5
    peak_hour_utc: int = 15
    drift_per_hour: float = 0.0
    vol_scale: dict[str, float] = field(default_factory=lambda: {"BTC": 1.0, "ETH": 1.25})
    default_vol_scale: float = 1.5
    hourly_notional: dict[str, float] = field(default_factory=lambda: {"BTC": 30e6, "ETH": 15e6})
    default_hourly_notional: float = 2e6
    volume_noise: float = 0.25


def _base(symbol: str) -> str:
    return symbol.split("/")[0]


def price_decimals(start_price: float) -> int:
    """Decimals giving about six significant digits at ``start_price``, at least two."""
    int_digits = math.floor(math.log10(start_price)) + 1
    return max(2, 6 - int_digits)


def _student_t(rng: np.random.Generator, nu: float, shape: tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(nu, size=shape) * math.sqrt((nu - 2.0) / nu)


def _format_ticks(ticks: np.ndarray, decimals: int) -> tuple[str, ...]:
    scale = 10**decimals
    return tuple(f"{k // scale}.{k % scale:0{decimals}d}" if decimals else str(k) for k in ticks.tolist())


def _format_volume(values: np.ndarray, decimals: int) -> tuple[str, ...]:
    return tuple(f"{v:.{decimals}f}" for v in values.tolist())


def generate_market(symbols: list[str] | tuple[str, ...], n_bars: int, start_ms: int,
                    timeframe_ms: int = HOUR_MS, seed: int = 0,
                    model: MarketModel | None = None) -> dict[str, Series]:
    """Simulate ``n_bars`` aligned bars for each symbol from ``start_ms`` (see the module docstring)."""
    return _simulate(symbols, n_bars, start_ms, timeframe_ms, seed, model or MarketModel(), None)


def generate_lead_lag_market(symbols: list[str] | tuple[str, ...], n_bars: int, start_ms: int,
                             timeframe_ms: int = HOUR_MS, seed: int = 0, beta: float = 0.3,
                             model: MarketModel | None = None, flip_at: int | None = None) -> dict[str, Series]:
    """Simulate a market with a planted, learnable edge: the second symbol follows the first with a lag.

    Every symbol is simulated as in :func:`generate_market` (same seed, same draws); then the second
    symbol's log return gains ``beta`` times the first symbol's return of the bar before::

        r[B, t] = beta · r[A, t−1] + ε[B, t]        ε[B, ·]: B's own GARCH-t return of the model above

    so ``E[r[B, t] | bars up to t−1] = beta · r[A, t−1]``: B's next return is predictable from A's last
    one, and from nothing else.  The first symbol (and any third or later) stays a random walk.  The
    high-low range of B is drawn around its whole move with the variance of its own shock ε.

    ``flip_at``: from bar index ``flip_at`` on the dynamics change: the coefficient becomes ``−beta`` (a model
    fitted before the change now points the wrong way; the bars before it are those without ``flip_at``).
    """
    if len(symbols) < 2:
        raise ValueError(f"a lead-lag market needs at least two symbols, got {len(symbols)}")
    if flip_at is not None and not 0 < flip_at < n_bars:
        raise ValueError(f"flip_at must be inside (0, {n_bars}), got {flip_at}")
    return _simulate(symbols, n_bars, start_ms, timeframe_ms, seed, model or MarketModel(), (0, 1, beta),
                     flip_at)


def _simulate(symbols: list[str] | tuple[str, ...], n_bars: int, start_ms: int, timeframe_ms: int, seed: int,
              m: MarketModel, lead_lag: tuple[int, int, float] | None,
              flip_at: int | None = None) -> dict[str, Series]:
    """The market of the module docstring; ``lead_lag = (leader, follower, beta)`` plants a lagged edge."""
    if n_bars < 1:
        raise ValueError(f"n_bars must be at least 1, got {n_bars}")
    if start_ms % timeframe_ms:
        raise ValueError(f"start_ms {start_ms} is not aligned to the {timeframe_ms} ms timeframe")
    if not (m.nu > 2.0 and m.alpha + m.beta < 1.0):
        raise ValueError("the model needs nu > 2 and alpha + beta < 1")
    n_sym = len(symbols)
    rng = np.random.default_rng(seed)
    # Every random array is drawn up front in a fixed order, so the output depends on the seed only.
    e_m = _student_t(rng, m.nu, (n_bars, 1))
    e_i = _student_t(rng, m.nu, (n_bars, n_sym))
    u_hi = rng.random((n_bars, n_sym))
    u_lo = rng.random((n_bars, n_sym))
    vol_noise = rng.normal(0.0, m.volume_noise, (n_bars, n_sym))

    z = math.sqrt(m.market_corr) * e_m + math.sqrt(1.0 - m.market_corr) * e_i
    sigma2 = m.hourly_vol**2
    omega = sigma2 * (1.0 - m.alpha - m.beta)
    h = np.empty((n_bars, n_sym))
    u = np.empty((n_bars, n_sym))
    h_t = np.full(n_sym, sigma2)
    for t in range(n_bars):
        h[t] = h_t
        u[t] = np.sqrt(h_t) * z[t]
        h_t = omega + m.alpha * u[t] ** 2 + m.beta * h_t

    open_ms = start_ms + timeframe_ms * np.arange(n_bars, dtype=np.int64)
    hours = (open_ms % DAY_MS) // HOUR_MS
    phase = np.cos(2.0 * np.pi * (hours - m.peak_hour_utc) / 24.0)[:, None]
    intraday = timeframe_ms < DAY_MS  # daily and longer bars cover every hour alike
    s_vol2 = 1.0 + m.vol_season * phase if intraday else np.ones_like(phase)
    s_volume = 1.0 + m.volume_season * phase if intraday else np.ones_like(phase)
    bar_hours = timeframe_ms / HOUR_MS
    k = np.array([m.vol_scale.get(_base(s), m.default_vol_scale) for s in symbols])
    bar_var = (k**2) * bar_hours * s_vol2 * h  # variance of the bar's log move
    r = m.drift_per_hour * bar_hours + np.sqrt(bar_var / h) * u
    if lead_lag is not None:
        leader, follower, beta = lead_lag
        coef = np.full(n_bars - 1, beta)
        if flip_at is not None:
            coef[flip_at - 1:] = -beta       # r[t] for t >= flip_at follows -beta * r[t-1]
        r[1:, follower] += coef * r[:-1, leader]
    # Exact extremes of a Brownian bridge from 0 to r with variance bar_var.
    hi_log = (r + np.sqrt(r**2 - 2.0 * bar_var * np.log1p(-u_hi))) / 2.0
    lo_log = (r - np.sqrt(r**2 - 2.0 * bar_var * np.log1p(-u_lo))) / 2.0

    e_abs_z = math.sqrt((m.nu - 2.0) / m.nu) * _mean_abs_t(m.nu)
    activity = np.sqrt(h / sigma2) * np.exp(0.5 * (np.abs(z) - e_abs_z) + vol_noise
                                            - m.volume_noise**2 / 2.0)

    out: dict[str, Series] = {}
    for j, sym in enumerate(symbols):
        p0 = START_PRICES.get(_base(sym), DEFAULT_START_PRICE)
        dec = price_decimals(p0)
        tick = 10.0**-dec
        log_close = math.log(p0) + np.cumsum(r[:, j])
        close_t = np.maximum(1, np.rint(np.exp(log_close) / tick)).astype(np.int64)
        open_t = np.concatenate(([round(p0 / tick)], close_t[:-1])).astype(np.int64)
        open_p = open_t * tick
        high_t = np.maximum(np.ceil(open_p * np.exp(hi_log[:, j]) / tick - 1e-9).astype(np.int64),
                            np.maximum(open_t, close_t))
        low_t = np.maximum(1, np.minimum(np.floor(open_p * np.exp(lo_log[:, j]) / tick + 1e-9).astype(np.int64),
                                         np.minimum(open_t, close_t)))
        notional = m.hourly_notional.get(_base(sym), m.default_hourly_notional) * bar_hours
        volume = notional / (close_t * tick) * s_volume[:, 0] * activity[:, j]
        v_dec = min(8, max(0, 8 - (math.floor(math.log10(notional / p0)) + 1)))
        out[sym] = Series(open_ms.copy(), _format_ticks(open_t, dec), _format_ticks(high_t, dec),
                          _format_ticks(low_t, dec), _format_ticks(close_t, dec),
                          _format_volume(np.round(volume, v_dec), v_dec))
    return out


def _mean_abs_t(nu: float) -> float:
    """E|T| for a standard Student-t with ``nu`` degrees of freedom."""
    return 2.0 * math.sqrt(nu) * math.gamma((nu + 1) / 2) / (math.sqrt(math.pi) * (nu - 1) * math.gamma(nu / 2))
