"""Rolling windows of closed candles, one per symbol.

A window holds the last ``length`` closed bars as a float array (open, high,
low, close, volume) for the predictor.  A repeated bar is ignored, an older bar
is refused, and a missing bar (a gap) restarts the count of consecutive bars:
the symbol is not traded until its window is whole again (``length``
consecutive bars with no hole).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from bot.events import Candle

COLUMNS = ("open", "high", "low", "close", "volume")


class Appended(str, Enum):
    APPENDED = "appended"
    REPEAT = "repeat"      # same open time as the last bar: ignored
    STALE = "stale"        # older than the last bar: ignored
    GAP = "gap"            # appended after one or more missing bars; the window restarts


class RollingWindow:
    """The last ``length`` closed bars of one symbol.

    Storage is a buffer of twice the length that is compacted when full, so
    :meth:`values` is always a contiguous view with no copy (this is on the
    per-bar hot path for every symbol).
    """

    __slots__ = ("length", "timeframe_ms", "_data", "_end", "_consecutive", "last_open_ms", "last_candle")

    def __init__(self, length: int, timeframe_ms: int) -> None:
        if length < 1:
            raise ValueError(f"window length must be at least 1, got {length}")
        self.length = length
        self.timeframe_ms = timeframe_ms
        self._data = np.empty((2 * length, len(COLUMNS)), dtype=np.float64)
        self._end = 0
        self._consecutive = 0
        self.last_open_ms: int | None = None
        self.last_candle: Candle | None = None

    def append(self, candle: Candle) -> Appended:
        last = self.last_open_ms
        if last is not None:
            if candle.open_ms == last:
                return Appended.REPEAT
            if candle.open_ms < last:
                return Appended.STALE
        gap = last is not None and candle.open_ms != last + self.timeframe_ms
        if self._end == len(self._data):
            keep = self.length - 1
            self._data[:keep] = self._data[self._end - keep:self._end]
            self._end = keep
        self._data[self._end] = (float(candle.open), float(candle.high), float(candle.low),
                                 float(candle.close), float(candle.volume))
        self._end += 1
        self._consecutive = 1 if gap else self._consecutive + 1
        self.last_open_ms = candle.open_ms
        self.last_candle = candle
        return Appended.GAP if gap else Appended.APPENDED

    def extend(self, candles: Iterable[Candle]) -> None:
        for c in candles:
            self.append(c)

    @property
    def is_whole(self) -> bool:
        """True when the last ``length`` bars are consecutive, with no hole."""
        return self._consecutive >= self.length

    @property
    def bars_missing(self) -> int:
        """Consecutive bars still needed before the window is whole."""
        return max(0, self.length - self._consecutive)

    def recent_closes(self) -> np.ndarray:
        """The closes of the consecutive bars at the window's end (since its last gap), oldest first."""
        n = min(self._consecutive, self.length, self._end)
        return self._data[self._end - n:self._end, COLUMNS.index("close")].copy()

    def values(self) -> np.ndarray:
        """The window as a read-only (length, 5) float array, oldest first. Requires :attr:`is_whole`."""
        if not self.is_whole:
            raise ValueError(f"window has {self._consecutive} consecutive bars, needs {self.length}")
        view = self._data[self._end - self.length:self._end]
        view.flags.writeable = False
        return view


@dataclass(frozen=True, slots=True)
class Batch:
    """All tradable symbols' windows for one bar: the predictor's input."""

    bar_ms: int
    symbols: tuple[str, ...]
    windows: np.ndarray  # (n_symbols, length, 5) float64


class MarketBuffer:
    """One :class:`RollingWindow` per subscribed symbol."""

    def __init__(self, symbols: Sequence[str], length: int, timeframe_ms: int) -> None:
        self.windows = {s: RollingWindow(length, timeframe_ms) for s in symbols}
        self.length = length

    def append(self, candle: Candle) -> Appended:
        return self.windows[candle.symbol].append(candle)

    def batch(self, bar_ms: int) -> Batch:
        """Stack the windows whose last bar is ``bar_ms`` and that are whole."""
        ready = tuple(s for s, w in self.windows.items() if w.last_open_ms == bar_ms and w.is_whole)
        if not ready:
            return Batch(bar_ms, (), np.empty((0, self.length, len(COLUMNS))))
        return Batch(bar_ms, ready, np.stack([self.windows[s].values() for s in ready]))
