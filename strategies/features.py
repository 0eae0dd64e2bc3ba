"""OHLCV bars → per-bar model features, strictly causal, and their normalisation.

Each feature of bar ``t`` is a function of bars ``t-25 … t`` only, computed with
finite rolling windows (simple means, no exponential smoothing with infinite
memory).  That gives two guarantees the tests check:

* no look-ahead: changing any bar after ``t`` leaves every feature of ``t`` unchanged;
* training/serving parity: the features of bar ``t`` are bit-identical whether
  computed over the whole history (training) or over the engine's rolling
  window (serving), as long as the window holds ``WARMUP`` bars before the rows used.

With ``lc = log close`` and ``r_t = lc_t - lc_{t-1}`` (the hourly log return):

====== ======================================================================
ret     r_t
range   log(high_t / low_t)
body    log(close_t / open_t)
vol_rel log1p(volume_t) - mean(log1p(volume)) over the last 24 bars
mom_24  mean of r over the last 24 bars
rv_24   sqrt(mean of r² over the last 24 bars)   (realised volatility)
rsi_14  (G - L) / (G + L) with G, L the mean gain and loss of the last 14
        returns: Cutler's RSI rescaled to [-1, 1] (0 when flat)
macd    mean(lc) over 12 bars - mean(lc) over 26 bars: MACD on log prices
        with simple means instead of EMAs, so its memory is finite
====== ======================================================================

The first ``WARMUP`` rows of a series have no features (NaN).  The model
target is the next bar's log return in percent (``TARGET_SCALE`` × r_{t+1}).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from strategies.base import CLOSE, HIGH, LOW, OPEN, VOLUME

FEATURES: tuple[str, ...] = ("ret", "range", "body", "vol_rel", "mom_24", "rv_24", "rsi_14", "macd")
N_FEATURES = len(FEATURES)
WARMUP = 25          # rows 0..24 lack a feature: macd needs 26 closes, mom_24/rv_24 need 24 returns
TARGET_SCALE = 100.0  # model targets and outputs are log returns in percent
CLIP = 8.0           # normalised features are clipped to ±CLIP standard deviations


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values along the last axis, NaN for the first ``n - 1``.

    A sliding window (not a cumulative sum) so every output is computed from the
    same ``n`` numbers in the same order wherever the series starts: the parity
    guarantee above depends on it.
    """
    out = np.full(x.shape, np.nan, dtype=np.float64)
    if x.shape[-1] >= n:
        out[..., n - 1:] = sliding_window_view(x, n, axis=-1).mean(axis=-1)
    return out


def compute_features(ohlcv: np.ndarray) -> np.ndarray:
    """``(..., T, 5)`` OHLCV → ``(..., T, N_FEATURES)`` float64; rows before ``WARMUP`` are NaN.

    Prices must be positive and finite (the feed and the CSV loader validate them).
    """
    a = np.asarray(ohlcv, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != 5:
        raise ValueError(f"expected (..., T, 5) OHLCV rows, got shape {a.shape}")
    lo, lc = np.log(a[..., OPEN]), np.log(a[..., CLOSE])
    lh, ll = np.log(a[..., HIGH]), np.log(a[..., LOW])
    r = np.full(lc.shape, np.nan)
    r[..., 1:] = lc[..., 1:] - lc[..., :-1]
    lv = np.log1p(np.maximum(a[..., VOLUME], 0.0))
    gains, losses = np.maximum(r, 0.0), np.maximum(-r, 0.0)
    g, l_ = _rolling_mean(gains, 14), _rolling_mean(losses, 14)
    total = g + l_
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, (g - l_) / np.where(total > 0, total, 1.0), 0.0)
    rsi = np.where(np.isnan(total), np.nan, rsi)
    cols = (
        r,
        lh - ll,
        lc - lo,
        lv - _rolling_mean(lv, 24),
        _rolling_mean(r, 24),
        np.sqrt(_rolling_mean(r * r, 24)),
        rsi,
        _rolling_mean(lc, 12) - _rolling_mean(lc, 26),
    )
    out = np.stack(cols, axis=-1)
    out[..., :WARMUP, :] = np.nan
    return out


def next_returns_pct(close: np.ndarray, horizon: int = 1) -> np.ndarray:
    """``(T,)`` closes → ``(T, horizon)``: row t holds 100·log(c_{t+k}/c_{t+k-1}), k = 1..horizon (NaN past the end)."""
    lc = np.log(np.asarray(close, dtype=np.float64))
    r = np.full(lc.shape, np.nan)
    r[:-1] = (lc[1:] - lc[:-1]) * TARGET_SCALE
    out = np.full((len(lc), horizon), np.nan)
    for k in range(horizon):
        out[: len(lc) - k, k] = r[k:]
    return out


@dataclass(frozen=True)
class FeatureScaler:
    """Per-feature mean and standard deviation, fitted on training rows only."""

    mean: np.ndarray   # (N_FEATURES,)
    std: np.ndarray    # (N_FEATURES,)

    @classmethod
    def fit(cls, rows: np.ndarray) -> FeatureScaler:
        """Fit on ``(n, N_FEATURES)`` feature rows, ignoring NaN rows (warm-up)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, N_FEATURES)
        rows = rows[~np.isnan(rows).any(axis=1)]
        if len(rows) < 2:
            raise ValueError("too few feature rows to fit the normalisation (need at least 2 after warm-up)")
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean, std)

    def transform(self, feats: np.ndarray) -> np.ndarray:
        """Standardise and clip to ±CLIP; float32 for the networks, NaN kept."""
        z = (np.asarray(feats, dtype=np.float64) - self.mean) / self.std
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def to_lists(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_lists(cls, d: dict[str, list[float]]) -> FeatureScaler:
        mean, std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        if mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,):
            raise ValueError(f"feature scaler has {mean.shape[0]} features, this code computes {N_FEATURES}")
        return cls(mean, std)
