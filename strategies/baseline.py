"""A transparent baseline predictor: shrunk momentum for μ, RiskMetrics EWMA for σ.

    r_t   = log(close_t / close_{t-1})
    μ     = shrink × mean(r over the last ``momentum_bars`` bars)
    σ²    = EWMA of r² with decay λ (RiskMetrics, λ = 0.94), seeded with the
            window's mean r²; σ is floored at ``sigma_floor``.

It is vectorised over symbols (one numpy pass for the whole batch) so the
engine's throughput benchmark measures the engine, not the model.  It is the
yardstick any learned model must beat, and what the engine trades with until
one is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.base import CLOSE
from strategies.events import Forecast


def ewma_variance(r: np.ndarray, lam: float) -> np.ndarray:
    """RiskMetrics variance after the last return of each row of ``r`` (n, T), seeded with the row's mean r²."""
    n = r.shape[1]
    # EWMA as one weighted sum: var_T = λ^n var_0 + (1-λ) Σ λ^(T-t) r_t², with var_0 = mean r².
    weights = (1.0 - lam) * lam ** np.arange(n - 1, -1, -1, dtype=np.float64)
    # An elementwise product summed along each row, not a BLAS matrix-vector product: the sum runs in
    # the same order whatever the batch size, so a symbol's forecast does not depend on which other
    # windows share its batch (BLAS gemv blocks rows differently by batch size, changing the last bit).
    # That is what lets a backtest compute every bar of a symbol in one pass with identical numbers.
    rr = r * r
    return lam**n * rr.mean(axis=1) + (rr * weights).sum(axis=1)


class EwmaMomentumPredictor:
    name = "baseline_ewma"

    def __init__(self, momentum_bars: int = 24, mu_shrink: float = 0.5, ewma_lambda: float = 0.94,
                 sigma_floor: float = 1e-5) -> None:
        if not 0.0 < ewma_lambda < 1.0:
            raise ValueError(f"ewma_lambda must be in (0, 1), got {ewma_lambda}")
        self.momentum_bars = momentum_bars
        self.mu_shrink = mu_shrink
        self.ewma_lambda = ewma_lambda
        self.sigma_floor = sigma_floor

    @property
    def min_window(self) -> int:
        return self.momentum_bars + 1

    def moments(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ, σ) arrays for a (n, window, 5) batch."""
        close = windows[:, :, CLOSE]
        r = np.diff(np.log(close), axis=1)                      # (n, window-1)
        mu = self.mu_shrink * r[:, -self.momentum_bars:].mean(axis=1)
        sigma = np.maximum(np.sqrt(ewma_variance(r, self.ewma_lambda)), self.sigma_floor)
        return mu, sigma

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        if windows.shape[0] != len(symbols):
            raise ValueError(f"{len(symbols)} symbols but {windows.shape[0]} windows")
        if windows.shape[0] == 0:
            return []
        if windows.shape[1] < self.min_window:
            raise ValueError(f"window of {windows.shape[1]} bars is shorter than the {self.min_window} needed")
        mu, sigma = self.moments(windows)
        return [Forecast(s, bar_ms, float(m), float(sd), self.name) for s, m, sd in zip(symbols, mu, sigma)]
