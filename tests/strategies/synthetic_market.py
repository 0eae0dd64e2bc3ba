"""Small OHLCV series for the model tests, generated here so the tests never need shared data."""

from __future__ import annotations

import numpy as np

from strategies.dataset import MarketSeries, WindowDataset

HOUR_MS = 3_600_000
T0_MS = 1_600_000_000_000 // HOUR_MS * HOUR_MS


def ohlcv_from_returns(r: np.ndarray, rng: np.random.Generator, start_price: float = 100.0) -> np.ndarray:
    """Consistent OHLCV rows from log returns: open = previous close, high/low around both."""
    close = start_price * np.exp(np.cumsum(r))
    open_ = np.concatenate([[start_price], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.002, size=(2, len(r))))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(3.0, 0.5, size=len(r))
    return np.stack([open_, high, low, close, volume], axis=1)


def random_walk(symbol: str, n: int, seed: int, vol: float = 0.01, start_ms: int = T0_MS) -> MarketSeries:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, vol, size=n)
    return MarketSeries(symbol, start_ms + HOUR_MS * np.arange(n, dtype=np.int64), ohlcv_from_returns(r, rng))


def ar1_market(symbol: str, n: int, seed: int, phi: float = 0.5, vol: float = 0.01) -> MarketSeries:
    """Returns with AR(1) memory: the next return is predictable from the last one."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, vol, size=n)
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = phi * r[i - 1] + e[i]
    return MarketSeries(symbol, T0_MS + HOUR_MS * np.arange(n, dtype=np.int64), ohlcv_from_returns(r, rng))


def window_dataset(feats: np.ndarray, targets: np.ndarray, lookback: int, ends: np.ndarray) -> WindowDataset:
    """A dataset straight from feature rows: one symbol, hourly bars from 0 ms; ``ends`` are the decision rows."""
    n = len(feats)
    targets = targets.reshape(n, -1)
    return WindowDataset(("A",), lookback, targets.shape[1], feats.astype(np.float32), targets.astype(np.float32),
                         np.ones(n), np.arange(n, dtype=np.int64) * HOUR_MS, np.asarray(ends, dtype=np.int64),
                         np.array([0]))
