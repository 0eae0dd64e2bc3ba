"""Market history → training samples, by time range, without look-ahead.

A *sample* is one decision bar ``t`` of one symbol: its input is the ``lookback``
normalised feature rows ending at ``t`` and its target the next ``horizon`` log
returns in percent (``r_{t+1} … r_{t+h}``).  Samples are kept as row indices into
one concatenated feature array, and windows are gathered per batch, so a 7-year
dataset costs its feature rows once, not ``lookback`` times over.

Rules that keep evaluation honest:

* features are computed once per symbol over the whole series; they are causal
  (``strategies.features``), so a row never depends on a later bar;
* a sample belongs to the range ``[start_ms, end_ms)`` of its decision bar *and*
  of every target bar, so a training range never sees a return of the range after it;
* a sample whose window or warm-up crosses a gap in the data is dropped, as the
  engine's rolling buffer restarts at a gap and never serves such a window;
* the normalisation is fitted by :meth:`FeatureStore.fit_scaler` on the rows of
  the training range alone.

``aligned=True`` builds samples for the multi-asset model: one sample per bar
at which every symbol has a valid sample; inputs ``(B, A, L, F)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from strategies.base import CLOSE
from strategies.features import WARMUP, FeatureScaler, compute_features, next_returns_pct


@dataclass(frozen=True, eq=False)
class MarketSeries:
    """One symbol's bars, ascending: ``open_ms`` (T,) int64 and ``ohlcv`` (T, 5) float64."""

    symbol: str
    open_ms: np.ndarray
    ohlcv: np.ndarray
    timeframe_ms: int = 3_600_000

    def __post_init__(self) -> None:
        if self.ohlcv.ndim != 2 or self.ohlcv.shape[1] != 5 or len(self.open_ms) != len(self.ohlcv):
            raise ValueError(f"{self.symbol}: open_ms {self.open_ms.shape} and ohlcv {self.ohlcv.shape} disagree")
        if len(self.open_ms) > 1 and not (np.diff(self.open_ms) > 0).all():
            raise ValueError(f"{self.symbol}: bars are not strictly ascending by open time")
        if not (np.isfinite(self.ohlcv).all() and (self.ohlcv[:, :4] > 0).all()):
            raise ValueError(f"{self.symbol}: prices must be finite and positive")

    def __len__(self) -> int:
        return len(self.open_ms)

    def run_length(self) -> np.ndarray:
        """(T,) bars in the gap-free stretch ending at each bar, itself included."""
        out = np.ones(len(self), dtype=np.int64)
        gap = np.diff(self.open_ms) != self.timeframe_ms
        for i in range(1, len(self)):    # one pass; 65k bars take a few ms
            out[i] = 1 if gap[i - 1] else out[i - 1] + 1
        return out


class WindowDataset:
    """Samples of one time range: gather inputs with :meth:`x` and targets with :meth:`y`."""

    def __init__(self, symbols: tuple[str, ...], lookback: int, horizon: int, feats: np.ndarray,
                 targets: np.ndarray, close: np.ndarray, open_ms: np.ndarray, ends: np.ndarray,
                 starts: np.ndarray) -> None:
        self.symbols = symbols
        self.lookback = lookback
        self.horizon = horizon
        self.feats = feats          # (R, F) float32, normalised, all symbols concatenated
        self.targets = targets      # (R, h) float32, percent
        self.close = close          # (R,) float64
        self.open_ms = open_ms      # (R,) int64
        self.ends = ends            # (N,) or (N, A) int64: global row of each sample's decision bar
        self.starts = starts        # (S,) int64: first global row of each symbol
        self._offsets = np.arange(-lookback + 1, 1, dtype=np.int64)

    @property
    def aligned(self) -> bool:
        return self.ends.ndim == 2

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def n_features(self) -> int:
        return self.feats.shape[1]

    def x(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Inputs of samples ``idx``: (B, L, F), or (B, A, L, F) when aligned; float32."""
        ends = self.ends if idx is None else self.ends[idx]
        return self.feats[ends[..., None] + self._offsets]

    def y(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Targets of samples ``idx``: (B, h), or (B, A, h) when aligned; percent log returns."""
        ends = self.ends if idx is None else self.ends[idx]
        return self.targets[ends]

    def decision_close(self) -> np.ndarray:
        """Close of each sample's decision bar: (N,) or (N, A)."""
        return self.close[self.ends]

    def next_close(self) -> np.ndarray:
        """Close of the bar after each decision bar (the bar the 1-step forecast is about)."""
        return self.close[self.ends + 1]

    def decision_ms(self) -> np.ndarray:
        return self.open_ms[self.ends]

    def symbol_index(self) -> np.ndarray:
        """(N,) index into :attr:`symbols` of each (pooled) sample."""
        if self.aligned:
            raise ValueError("aligned samples hold every symbol")
        return np.searchsorted(self.starts, self.ends, side="right") - 1


class FeatureStore:
    """Features of several symbols computed once; datasets for any time range cut from them."""

    def __init__(self, series: Sequence[MarketSeries], horizon: int = 1) -> None:
        if not series:
            raise ValueError("no market series given")
        names = [s.symbol for s in series]
        if len(set(names)) != len(names):
            raise ValueError(f"a symbol is given twice: {names}")
        self.series = tuple(series)
        self.symbols = tuple(names)
        self.horizon = horizon
        self.raw = np.concatenate([compute_features(s.ohlcv) for s in series])
        self.targets = np.concatenate([next_returns_pct(s.ohlcv[:, CLOSE], horizon) for s in series])
        self.close = np.concatenate([s.ohlcv[:, CLOSE] for s in series])
        self.open_ms = np.concatenate([s.open_ms for s in series])
        self.run = np.concatenate([s.run_length() for s in series])
        lengths = np.array([len(s) for s in series], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.stops = self.starts + lengths

    def first_ms(self) -> int:
        return int(max(s.open_ms[0] for s in self.series))

    def last_ms(self) -> int:
        return int(min(s.open_ms[-1] for s in self.series))

    def fit_scaler(self, start_ms: int, end_ms: int) -> FeatureScaler:
        """Normalisation fitted on every symbol's feature rows with open time in ``[start_ms, end_ms)``."""
        mask = (self.open_ms >= start_ms) & (self.open_ms < end_ms)
        return FeatureScaler.fit(self.raw[mask])

    def _valid_ends(self, i: int, lookback: int, start_ms: int, end_ms: int) -> np.ndarray:
        """Global rows of symbol ``i`` that are valid decision bars for the range."""
        a, b = int(self.starts[i]), int(self.stops[i])
        t = np.arange(a, b - self.horizon, dtype=np.int64)     # the last h bars have no full target
        ok = (self.open_ms[t] >= start_ms) & (self.open_ms[t + self.horizon] < end_ms)
        ok &= self.run[t] >= lookback + WARMUP                  # window and its warm-up gap-free
        ok &= self.run[t + self.horizon] == self.run[t] + self.horizon   # targets do not cross a gap
        ok &= ~np.isnan(self.targets[t]).any(axis=1)
        return t[ok]

    def dataset(self, start_ms: int, end_ms: int, lookback: int, scaler: FeatureScaler,
                aligned: bool = False) -> WindowDataset:
        """Samples whose decision bar and targets lie in ``[start_ms, end_ms)``."""
        if lookback < 1:
            raise ValueError(f"lookback must be at least 1, got {lookback}")
        feats = scaler.transform(self.raw)
        targets = self.targets.astype(np.float32)
        per_symbol = [self._valid_ends(i, lookback, start_ms, end_ms) for i in range(len(self.symbols))]
        if aligned:
            common = per_symbol[0]
            times = self.open_ms[common]
            for ends in per_symbol[1:]:
                times = np.intersect1d(times, self.open_ms[ends], assume_unique=True)
            cols = []
            for ends in per_symbol:
                pos = np.searchsorted(self.open_ms[ends], times)
                cols.append(ends[pos])
            ends_arr = np.stack(cols, axis=1) if len(times) else np.zeros((0, len(self.symbols)), np.int64)
        else:
            ends_arr = np.concatenate(per_symbol)
        return WindowDataset(self.symbols, lookback, self.horizon, feats, targets, self.close, self.open_ms,
                             ends_arr, self.starts)


def split_ms(store: FeatureStore, fractions: Sequence[float]) -> list[int]:
    """Cut points (open times) that split the common history into consecutive shares ``fractions``."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must add up to 1, got {list(fractions)}")
    first, last = store.first_ms(), store.last_ms() + store.series[0].timeframe_ms
    cuts, acc = [first], 0.0
    for f in fractions[:-1]:
        acc += f
        cuts.append(int(first + acc * (last - first)))
    cuts.append(last)
    return cuts
