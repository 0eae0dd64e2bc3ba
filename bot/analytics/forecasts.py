"""Forecast quality over time: each logged N(μ, σ²) scored against the return that followed.

The forecast made at the close of bar t is of y_t = log(close_{t+1} / close_t), the next bar's log
return (fractions, as the trade log stores μ and σ); a forecast whose next candle is missing is left
out.  With z = (y − μ)/σ and Φ the standard normal cdf:

    nll_t        = ½·log(2π) + log σ_t + ½·z_t² for a Gaussian forecast; a calibrated forecast (trade log
                   version 3) is scored with its own density, the Student-t with ν_t degrees of freedom whose
                   central 68 % interval is μ ± z68_t·σ_t (strategies.calibration.nll)
    rolling NLL  = mean nll over the forecasts of the last ``window`` bars (168 = one week of hours),
                   pooled over symbols, beside the same for the baseline
    baseline     = persistence/EWMA (strategies.baselines.persistence_ewma): μ = 0,
                   σ² = RiskMetrics EWMA (λ = 0.94) of the same candles' squared returns, seeded on the
                   first 24; scored on the forecasts where both exist (a gap restarts it)
    coverage(ℓ)  = share with |y − μ| ≤ Φ⁻¹(½ + ℓ/2)·σ for ℓ = 68 %, 95 % (strategies.metrics.coverage), or
                   within the forecast's own calibrated interval μ ± z68·σ, μ ± z95·σ where it has one
    PIT          u_t = Φ(z_t) (the t's cdf for a calibrated forecast); reliability at q = share of u_t ≤ q,
                   for q = 0.05 … 0.95
                   (a calibrated forecast gives q itself: the diagonal; the PIT histogram is flat)
    σ buckets    quintiles of σ at decision time; per bucket the PnL of the positions held over the
                 next bar: qty at the close of t × (close_{t+1} − close_t), before fees and funding
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from strategies.baselines import persistence_ewma
from strategies.calibration import Z68, Z95
from strategies.calibration import nll as calibrated_nll
from strategies.metrics import coverage, gaussian_nll

EWMA_LAMBDA = 0.94
EWMA_WARMUP = 24
RELIABILITY_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Forecasts joined with what happened, ascending by bar (arrays of equal length)."""

    bar_ms: np.ndarray
    symbol: np.ndarray          # object array of symbol names
    mu: np.ndarray
    sigma: np.ndarray
    y: np.ndarray               # realised log return of the next bar
    base_sigma: np.ndarray      # EWMA baseline σ for the same bar (NaN during its warm-up)
    z68: np.ndarray | None = None   # calibrated interval half-widths in units of σ (None: Gaussian's)
    z95: np.ndarray | None = None
    nu: np.ndarray | None = None    # Student-t degrees of freedom (inf: Gaussian)

    def __len__(self) -> int:
        return int(self.y.size)


@dataclass(frozen=True, slots=True)
class ForecastQuality:
    n: int
    nll: float
    baseline_nll: float | None      # on the forecasts the baseline covers
    model_nll_same: float | None    # the model on those same forecasts
    cov68: float
    cov95: float
    reliability: tuple[tuple[float, float], ...]   # (q, observed share of u ≤ q)
    pit_histogram: tuple[float, ...]                # share of u in each tenth; 0.1 each when calibrated


@dataclass(frozen=True, slots=True)
class SigmaBucket:
    lo: float
    hi: float
    forecasts: int
    held: int                   # forecasts with a position held over the next bar
    pnl: float                  # quote asset, before fees and funding
    mean_y_abs: float           # mean |realised return|: a σ that sorts risk makes this rise


def join_outcomes(forecasts: Sequence[tuple[int, str, float, float]],
                  closes: Mapping[str, Mapping[int, float]], timeframe_ms: int,
                  shapes: Mapping[tuple[int, str], tuple[float, float, float]] | None = None) -> Outcomes:
    """Join ``(bar_ms, symbol, mu, sigma)`` with the next bar's log return from ``closes[symbol][bar_ms]``;
    ``shapes[(bar_ms, symbol)]`` = (z68, z95, ν) of calibrated forecasts."""
    base = {s: _ewma_sigma(c, timeframe_ms) for s, c in closes.items()}
    rows = []
    for bar_ms, symbol, mu, sigma in forecasts:
        c = closes.get(symbol, {})
        now, nxt = c.get(bar_ms), c.get(bar_ms + timeframe_ms)
        if now is None or nxt is None or not (sigma > 0 and math.isfinite(mu) and math.isfinite(sigma)):
            continue
        rows.append((bar_ms, symbol, mu, sigma, math.log(nxt / now), base[symbol].get(bar_ms, math.nan)))
    rows.sort(key=lambda r: (r[0], r[1]))
    cols = list(zip(*rows)) if rows else [()] * 6
    out = Outcomes(bar_ms=np.asarray(cols[0], dtype=np.int64), symbol=np.asarray(cols[1], dtype=object),
                   mu=np.asarray(cols[2], dtype=np.float64), sigma=np.asarray(cols[3], dtype=np.float64),
                   y=np.asarray(cols[4], dtype=np.float64), base_sigma=np.asarray(cols[5], dtype=np.float64))
    if shapes:
        gauss = (Z68, Z95, math.inf)
        sh = np.array([shapes.get((r[0], r[1]), gauss) for r in rows], dtype=np.float64).reshape(-1, 3)
        out = replace(out, z68=sh[:, 0], z95=sh[:, 1], nu=sh[:, 2])
    return out


def _ewma_sigma(closes: Mapping[int, float], timeframe_ms: int) -> dict[int, float]:
    """{bar_ms: EWMA σ of the return from this bar's close to the next}, per run of consecutive bars."""
    out: dict[int, float] = {}
    times = sorted(closes)
    start = 0
    for i in range(1, len(times) + 1):
        if i < len(times) and times[i] == times[i - 1] + timeframe_ms:
            continue
        seg = times[start:i]     # consecutive bars; returns[k] runs from seg[k] to seg[k + 1]
        start = i
        if len(seg) - 1 <= EWMA_WARMUP:
            continue
        c = np.array([closes[t] for t in seg])
        _, sigma = persistence_ewma(np.diff(np.log(c)), EWMA_LAMBDA, EWMA_WARMUP)
        for k, s in enumerate(sigma):
            if math.isfinite(s) and s > 0:
                out[seg[k]] = float(s)
    return out


def nll_per_forecast(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The Gaussian NLL of each outcome (its mean is ``gaussian_nll``)."""
    return calibrated_nll(mu, sigma, y)


def pit(o: Outcomes) -> np.ndarray:
    """u = F((y − μ)/σ) for each outcome: Φ, or the calibrated Student-t's cdf."""
    z = (o.y - o.mu) / o.sigma
    u = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in z])
    if o.nu is not None and o.z68 is not None:
        t = np.isfinite(o.nu)
        if t.any():
            from scipy.stats import t as student_t

            scale = o.z68[t] / student_t.ppf(0.84, o.nu[t])
            u[t] = student_t.cdf(z[t] / scale, o.nu[t])
    return u


def _nll(o: Outcomes) -> np.ndarray:
    return calibrated_nll(o.mu, o.sigma, o.y, o.z68, o.nu)


def _covered(o: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    """Whether each outcome fell inside its 68 % and its 95 % interval."""
    z = np.abs(o.y - o.mu) / o.sigma
    z68 = Z68 if o.z68 is None else o.z68
    z95 = Z95 if o.z95 is None else o.z95
    return z <= z68, z <= z95


def quality(o: Outcomes) -> ForecastQuality | None:
    """The whole-run scores; None with no outcome."""
    if len(o) == 0:
        return None
    u = pit(o)
    both = np.isfinite(o.base_sigma) & (o.base_sigma > 0)
    base = model_same = None
    nll = _nll(o)
    if both.any():
        base = gaussian_nll(np.zeros(int(both.sum())), o.base_sigma[both], o.y[both])
        model_same = float(np.mean(nll[both]))
    hist = np.histogram(u, bins=10, range=(0.0, 1.0))[0] / u.size
    if o.z68 is None:
        cov68, cov95 = coverage(o.mu, o.sigma, o.y, 0.68), coverage(o.mu, o.sigma, o.y, 0.95)
    else:
        c68, c95 = _covered(o)
        cov68, cov95 = float(np.mean(c68)), float(np.mean(c95))
    return ForecastQuality(
        n=len(o), nll=float(np.mean(nll)), baseline_nll=base, model_nll_same=model_same,
        cov68=cov68, cov95=cov95,
        reliability=tuple((q, float(np.mean(u <= q))) for q in RELIABILITY_LEVELS),
        pit_histogram=tuple(float(h) for h in hist))


@dataclass(frozen=True, slots=True)
class RollingQuality:
    bar_ms: np.ndarray          # each bar with outcomes
    nll: np.ndarray             # mean model NLL over the trailing window
    baseline_nll: np.ndarray    # the baseline's, on the window's forecasts it covers (NaN: none)
    cov68: np.ndarray
    cov95: np.ndarray
    sigma: np.ndarray           # mean forecast σ at the bar (not rolled)


def rolling(o: Outcomes, window_bars: int, timeframe_ms: int) -> RollingQuality:
    """Trailing-window scores at every bar: the window holds the forecasts of bars (t − window, t]."""
    bars = np.unique(o.bar_ms)
    nll = _nll(o)
    ok = np.isfinite(o.base_sigma) & (o.base_sigma > 0)
    safe = np.where(ok, o.base_sigma, 1.0)
    bnll = np.where(ok, nll_per_forecast(np.zeros_like(o.y), safe, o.y), 0.0)
    c68, c95 = _covered(o)
    # Prefix sums make each window O(1): sums over [lo, hi) of the rows sorted by bar.
    cum = {name: np.concatenate(([0.0], np.cumsum(v))) for name, v in
           (("nll", nll), ("b", bnll), ("bn", ok.astype(float)), ("c68", c68.astype(float)),
            ("c95", c95.astype(float)), ("sigma", o.sigma))}
    hi = np.searchsorted(o.bar_ms, bars, side="right")
    lo = np.searchsorted(o.bar_ms, bars - window_bars * timeframe_ms, side="right")
    at = np.searchsorted(o.bar_ms, bars, side="left")

    def window(name: str) -> np.ndarray:
        return cum[name][hi] - cum[name][lo]

    n = (hi - lo).astype(float)
    nb = window("bn")
    with np.errstate(invalid="ignore", divide="ignore"):
        base = np.where(nb > 0, window("b") / np.where(nb > 0, nb, 1.0), np.nan)
    return RollingQuality(bar_ms=bars, nll=window("nll") / n, baseline_nll=base, cov68=window("c68") / n,
                          cov95=window("c95") / n, sigma=(cum["sigma"][hi] - cum["sigma"][at]) / (hi - at))


def sigma_buckets(sigma: np.ndarray, pnl: np.ndarray, held: np.ndarray, y: np.ndarray,
                  buckets: int = 5) -> tuple[SigmaBucket, ...]:
    """PnL by σ quantile bucket (quintiles by default); ties at an edge go to the lower bucket."""
    if sigma.size == 0:
        return ()
    edges = np.quantile(sigma, np.linspace(0.0, 1.0, buckets + 1))
    index = np.clip(np.searchsorted(edges, sigma, side="left") - 1, 0, buckets - 1)
    out = []
    for b in range(buckets):
        m = index == b
        if not m.any():
            continue
        out.append(SigmaBucket(lo=float(edges[b]), hi=float(edges[b + 1]), forecasts=int(m.sum()),
                               held=int(held[m].sum()), pnl=float(pnl[m].sum()),
                               mean_y_abs=float(np.mean(np.abs(y[m])))))
    return tuple(out)
