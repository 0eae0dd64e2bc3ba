"""Honest statistical baselines for walk-forward evaluation: EWMA and GARCH(1,1).

All series are hourly log returns in **percent** (r_t = 100·log(c_{t+1}/c_t)).
Each baseline returns Gaussian one-step-ahead forecasts (μ_t, σ_t) of r_t that
use only r_0 … r_{t−1}: element t of a forecast array is the forecast of
``returns_pct[t]``, never informed by it or anything later.

Persistence + RiskMetrics EWMA (``persistence_ewma``)
    μ_t = 0 (random walk in log price)
    σ²_w = 1/w · Σ_{i<w} r_i²                 seed from the first w = ``warmup`` returns
    σ²_{t+1} = λ·σ²_t + (1 − λ)·r_t²          for t ≥ w, λ = 0.94 (RiskMetrics 1996)
    Forecasts start at index w (NaN before): σ_w uses r_0 … r_{w−1} only.

GARCH(1,1), Gaussian, zero mean (``garch11_fit`` / ``garch11_forecast``)
    ε_t = r_t − μ,   σ²_t = ω + α·ε²_{t−1} + β·σ²_{t−1}
    σ²_0 = ω + (α + β)·b,  b = backcast = Σ_{i<75} w_i ε_i², w_i ∝ 0.94^i
    Parameters are fitted by ``arch`` (maximum likelihood) on the training
    sample only, then held FIXED while the recursion is filtered through the
    whole series; the backcast b is computed from the training sample (its
    first 75 bars, exactly as ``arch`` does by default) and stored with the
    parameters, so σ_t depends on r_0 … r_{t−1} and the fitted numbers only.
    Mean model: 'Zero' (μ = 0) by default.  The hourly drift (~0.003 %/h on
    BTC) is a hundredth of the noise, its estimate is noise, and a zero mean
    makes the GARCH forecast share the persistence baseline's μ, so the two
    differ only in σ.  'Constant' is accepted for comparison.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from arch import arch_model
from arch.utility.exceptions import ConvergenceWarning, DataScaleWarning
from scipy.signal import lfilter

__all__ = [
    "GarchFitError",
    "Garch11Params",
    "garch11_fit",
    "garch11_forecast",
    "garch11_walk_forward",
    "persistence_ewma",
]

MeanModel = Literal["Zero", "Constant"]

_BACKCAST_BARS = 75  # arch's default backcast window (ARCHModel.backcast, weights 0.94**i)
_BACKCAST_DECAY = 0.94


class GarchFitError(RuntimeError):
    """The optimiser did not converge; the fitted parameters must not be used."""


@dataclass(frozen=True, slots=True)
class Garch11Params:
    """Fitted GARCH(1,1) parameters plus the state needed to keep filtering."""

    omega: float
    alpha: float
    beta: float
    mu: float               # 0.0 for the 'Zero' mean model
    backcast: float         # σ² proxy before the first bar (seeds the recursion at index 0)
    next_variance: float    # σ² forecast for the first bar after the training sample
    n_train: int            # number of training returns
    loglik: float           # in-sample Gaussian log-likelihood (arch's count)
    mean: MeanModel = "Zero"

    @property
    def persistence(self) -> float:
        """Return α + β (variance shocks decay as (α + β)^h)."""
        return self.alpha + self.beta

    def step(self, variance: float, ret_pct: float) -> float:
        """Return σ²_{t+1} from σ²_t and the observed r_t (for a live, bar-by-bar update)."""
        eps = ret_pct - self.mu
        return self.omega + self.alpha * eps * eps + self.beta * variance


def _finite_1d(returns_pct: np.ndarray, name: str = "returns_pct") -> np.ndarray:
    r = np.asarray(returns_pct, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {r.shape}")
    bad = ~np.isfinite(r)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s), first at index {int(np.argmax(bad))}")
    return r


def persistence_ewma(returns_pct: np.ndarray, lam: float = 0.94,
                     warmup: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Return (mu, sigma) of the random walk + RiskMetrics EWMA; element t forecasts returns_pct[t]."""
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must be in (0, 1), got {lam!r}")
    r = _finite_1d(returns_pct)
    if not 1 <= warmup <= r.size:
        raise ValueError(f"warmup must be in [1, {r.size}] (the number of returns), got {warmup!r}")
    variance = np.full(r.size, np.nan)
    seed = float(np.mean(r[:warmup] ** 2))
    if warmup < r.size:
        variance[warmup] = seed
        # y[k] = (1 − λ)·r²_{w+k} + λ·y[k−1], y[−1] = seed: the variance after seeing r_{w+k},
        # i.e. the forecast for index w+k+1.  lfilter runs the recursion sequentially in C.
        after = lfilter([1.0 - lam], [1.0, -lam], r[warmup:-1] ** 2, zi=[lam * seed])[0]
        variance[warmup + 1:] = after
    mu = np.where(np.isnan(variance), np.nan, 0.0)
    return mu, np.sqrt(variance)


def _backcast(resids: np.ndarray) -> float:
    """Return arch's default GARCH backcast: 0.94-weighted mean of the first 75 squared residuals."""
    w = _BACKCAST_DECAY ** np.arange(min(_BACKCAST_BARS, resids.size))
    w /= w.sum()
    return float(np.sum(resids[: w.size] ** 2 * w))


def _garch_variance(omega: float, alpha: float, beta: float, mu: float, backcast: float,
                    returns_pct: np.ndarray) -> np.ndarray:
    """Return σ²_t for t = 0 … n (n + 1 values: the last is the forecast past the series)."""
    eps2 = (returns_pct - mu) ** 2
    # σ²_t = (ω + α·ε²_{t−1}) + β·σ²_{t−1}, with ε²_{−1} = σ²_{−1} = backcast, as arch's
    # garch_recursion does.  A linear first-order filter, so lfilter runs it in C instead of a
    # Python loop over ~65k bars; it is sequential, hence exactly causal.  arch's own filter also
    # clips σ² to loose bounds built from full-sample statistics (var, max ε²): those are not causal
    # and never bind for a fitted model, so they are left out here.
    drive = omega + alpha * np.concatenate(([backcast], eps2))
    return lfilter([1.0], [1.0, -beta], drive, zi=[beta * backcast])[0]


def garch11_fit(train_returns_pct: np.ndarray, mean: MeanModel = "Zero") -> Garch11Params:
    """Fit a Gaussian GARCH(1,1) with ``arch`` on percent returns and return its parameters and state."""
    if mean not in ("Zero", "Constant"):
        raise ValueError(f"mean must be 'Zero' or 'Constant', got {mean!r}")
    r = _finite_1d(train_returns_pct, "train_returns_pct")
    if r.size < 100:
        raise ValueError(f"train_returns_pct needs at least 100 returns to fit GARCH(1,1), got {r.size}")
    # Same residuals arch uses for its starting values: r itself, or r minus its sample mean.
    backcast = _backcast(r if mean == "Zero" else r - r.mean())
    model = arch_model(r, mean=mean, vol="GARCH", p=1, q=1, dist="normal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(disp="off", backcast=backcast)
    for w in caught:
        if issubclass(w.category, DataScaleWarning):
            raise ValueError(f"train_returns_pct must be log returns in percent (x100); arch says: {w.message}")
        if issubclass(w.category, ConvergenceWarning):
            raise GarchFitError(f"GARCH(1,1) fit did not converge: {w.message}")
        # Anything else is unexpected here: let it surface (as an error under pytest).
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if result.convergence_flag != 0:
        raise GarchFitError(f"GARCH(1,1) fit did not converge (scipy status {result.convergence_flag})")
    p = result.params
    omega, alpha, beta = float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"])
    mu = float(p["mu"]) if mean == "Constant" else 0.0
    variance = _garch_variance(omega, alpha, beta, mu, backcast, r)
    return Garch11Params(omega=omega, alpha=alpha, beta=beta, mu=mu, backcast=backcast,
                         next_variance=float(variance[-1]), n_train=r.size,
                         loglik=float(result.loglikelihood), mean=mean)


def garch11_forecast(params: Garch11Params, returns_pct: np.ndarray,
                     start: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (mu, sigma) forecasting returns_pct[start:] with fixed params; element k forecasts start + k.

    ``returns_pct`` must begin at the same bar as the training sample (the
    stored backcast seeds index 0); it may run past the training end.
    """
    r = _finite_1d(returns_pct)
    if not 0 <= start <= r.size:
        raise ValueError(f"start must be in [0, {r.size}], got {start!r}")
    variance = _garch_variance(params.omega, params.alpha, params.beta, params.mu, params.backcast, r)
    sigma = np.sqrt(variance[start:r.size])
    return np.full(sigma.size, params.mu), sigma


def garch11_walk_forward(returns_pct: np.ndarray, train_end: int,
                         mean: MeanModel = "Zero") -> tuple[np.ndarray, np.ndarray, Garch11Params]:
    """Fit on returns_pct[:train_end], forecast returns_pct[train_end:]; return (mu, sigma, params)."""
    r = _finite_1d(returns_pct)
    if not 0 < train_end < r.size:
        raise ValueError(f"train_end must be in (0, {r.size}), got {train_end!r}")
    params = garch11_fit(r[:train_end], mean=mean)
    mu, sigma = garch11_forecast(params, r, train_end)
    return mu, sigma, params
