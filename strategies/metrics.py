"""Score Gaussian one-step-ahead return forecasts (pure, vectorised, float64).

Every forecast is a predictive distribution N(μ_t, σ_t²) of the next hourly
log return in **percent** (y_t = 100·log(c_{t+1}/c_t)); σ is a standard
deviation, σ > 0.  With z_t = (y_t − μ_t)/σ_t, φ/Φ the standard normal pdf/cdf
and n the number of bars, the metrics are means over bars:

    nll      = 1/n Σ [ ½·log(2π) + log σ_t + ½·z_t² ]
               natural log, constant included: the same count as the Gaussian
               log-likelihood of the ``arch`` package, so −loglik/n of a fitted
               model equals ``gaussian_nll`` of its in-sample forecasts.
    crps     = 1/n Σ σ_t·[ z_t·(2Φ(z_t) − 1) + 2φ(z_t) − 1/√π ]
               closed form for a normal forecast (Gneiting & Raftery 2007,
               eq. 21); in the units of y (percent); lower is better; it
               reduces to |μ − y| as σ → 0.
    coverage = share of bars with |y_t − μ_t| ≤ q·σ_t, q = Φ⁻¹(½ + level/2)
               the central ``level`` interval with the exact normal quantile
               (0.68 → q = 0.99446, 0.95 → q = 1.95996), not "±1σ"; the
               boundary counts as inside.  ``coverage_1sigma`` uses q = 1
               (nominal 68.27 %).
    mape     = 1/n Σ |ĉ_{t+1} − c_{t+1}| / c_{t+1} · 100,  ĉ_{t+1} = c_t·exp(μ_t/100)
               the point forecast of the next close implied by the log-return
               mean (the median of the log-normal price forecast), in percent.
    rmse     = √(1/n Σ (μ_t − y_t)²), in percent.
    dir_acc  = share of hits sign(μ_t) = sign(y_t) among bars with y_t ≠ 0;
               bars with y_t = 0 are left out (no direction to call), a μ_t = 0
               forecast calls no direction and counts as a miss.  NaN when every
               y_t is 0.

Inputs are validated (1-D, equal length, non-empty, finite, σ > 0, prices > 0);
a violation raises ``ValueError`` naming the offending array.  numpy and the
standard library only (no scipy), so scoring runs wherever a model does.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = [
    "coverage",
    "coverage_1sigma",
    "directional_accuracy",
    "gaussian_crps",
    "gaussian_nll",
    "mape_next_close",
    "rmse",
    "score_all",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_ERFC = np.frompyfunc(math.erfc, 1, 1)  # numpy has no erf; this keeps the module scipy-free
_POSITIVE = frozenset({"sigma", "close_t", "close_next"})  # inputs that must be > 0


def _checked(**arrays: object) -> list[np.ndarray]:
    """Return the named inputs as float64 1-D arrays, or raise ValueError naming the bad one."""
    out: list[np.ndarray] = []
    n: int | None = None
    first = ""
    for name, value in arrays.items():
        a = np.asarray(value, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        if n is None:
            n, first = a.size, name
        elif a.size != n:
            raise ValueError(f"{name} has length {a.size}, expected {n} (the length of {first})")
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s), first at index {int(np.argmax(bad))}")
        if name in _POSITIVE:
            nonpos = a <= 0.0
            if nonpos.any():
                raise ValueError(f"{name} must be > 0, got {a[nonpos][0]!r} at index {int(np.argmax(nonpos))}")
        out.append(a)
    return out


def gaussian_nll(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> float:
    """Return the mean negative log-likelihood per bar of y under N(mu, sigma²), constant included."""
    mu, sigma, y = _checked(mu=mu, sigma=sigma, y=y)
    z = (y - mu) / sigma
    return float(np.mean(_HALF_LOG_2PI + np.log(sigma) + 0.5 * z * z))


def gaussian_crps(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> float:
    """Return the mean closed-form CRPS of N(mu, sigma²) against y (units of y)."""
    mu, sigma, y = _checked(mu=mu, sigma=sigma, y=y)
    z = (y - mu) / sigma
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    cdf = 0.5 * _ERFC(-z / math.sqrt(2.0)).astype(np.float64)  # Φ(z) via erfc: accurate in both tails
    crps = sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - _INV_SQRT_PI)
    return float(np.mean(crps))


def coverage(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray, level: float) -> float:
    """Return the share of y inside the central ``level`` interval mu ± Φ⁻¹(½ + level/2)·sigma."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    mu, sigma, y = _checked(mu=mu, sigma=sigma, y=y)
    q = NormalDist().inv_cdf(0.5 + 0.5 * level)
    return float(np.mean(np.abs(y - mu) <= q * sigma))


def coverage_1sigma(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> float:
    """Return the share of y inside mu ± 1·sigma (nominal 68.27 % for a calibrated forecast)."""
    mu, sigma, y = _checked(mu=mu, sigma=sigma, y=y)
    return float(np.mean(np.abs(y - mu) <= sigma))


def mape_next_close(close_t: np.ndarray, mu: np.ndarray, close_next: np.ndarray) -> float:
    """Return the MAPE (percent) of the next-close point forecast close_t·exp(mu/100)."""
    close_t, mu, close_next = _checked(close_t=close_t, mu=mu, close_next=close_next)
    forecast = close_t * np.exp(mu / 100.0)
    return float(np.mean(np.abs(forecast - close_next) / close_next) * 100.0)


def rmse(mu: np.ndarray, y: np.ndarray) -> float:
    """Return the root mean squared error of the mean forecast (units of y)."""
    mu, y = _checked(mu=mu, y=y)
    return float(np.sqrt(np.mean((mu - y) ** 2)))


def directional_accuracy(mu: np.ndarray, y: np.ndarray) -> float:
    """Return the share of bars with y != 0 whose sign mu calls; mu == 0 is a miss, NaN if all y == 0."""
    mu, y = _checked(mu=mu, y=y)
    moved = y != 0.0
    if not moved.any():
        return math.nan
    # np.sign(0) = 0 never equals ±1, so mu == 0 counts as a miss without a special case.
    return float(np.mean(np.sign(mu[moved]) == np.sign(y[moved])))


def score_all(close_t: np.ndarray, close_next: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
              y: np.ndarray) -> dict[str, float]:
    """Return every metric: mape, rmse, dir_acc, nll, crps, cov68, cov95 and n (bars scored)."""
    close_t, close_next, mu, sigma, y = _checked(close_t=close_t, close_next=close_next, mu=mu, sigma=sigma, y=y)
    return {
        "mape": mape_next_close(close_t, mu, close_next),
        "rmse": rmse(mu, y),
        "dir_acc": directional_accuracy(mu, y),
        "nll": gaussian_nll(mu, sigma, y),
        "crps": gaussian_crps(mu, sigma, y),
        "cov68": coverage(mu, sigma, y, 0.68),
        "cov95": coverage(mu, sigma, y, 0.95),
        "n": float(y.size),
    }
