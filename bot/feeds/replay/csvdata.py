"""OHLCV CSV files ⇄ :class:`Series`, values kept as the file's exact decimal strings.

The format (see ``shared/data/README.md``)::

    open_time,open,high,low,close,volume
    1546300800000,3701.23,3713.0,3689.88,3700.31,686.36742

``open_time`` is the bar's open in integer UTC milliseconds.  Prices and volume
stay strings, never re-formatted, so that a replay sends exactly what the file
holds.  A file may be gzip-compressed (``.csv.gz``).  Loading validates every
row and raises :class:`~bot.errors.DataError` naming the file, line and problem.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import numpy as np

from bot.config import TIMEFRAMES_MS
from bot.errors import DataError

HEADER = ("open_time", "open", "high", "low", "close", "volume")
# Quote assets recognised in a file name, longest first so that 'FDUSD' wins over 'USD…' lookalikes.
FILENAME_QUOTES = ("FDUSD", "USDT", "USDC", "BTC", "ETH", "BNB")
# Binance weekly klines open on Mondays 00:00 UTC; the epoch was a Thursday (4 days earlier).
_WEEK_OFFSET_MS = 4 * 86_400_000
_DECIMAL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:\n[0-9]+(?:\.[0-9]+)?)*")
_INT_RE = re.compile(r"[0-9]{1,18}(?:\n[0-9]{1,18})*")
_FILENAME_RE = re.compile(r"^([A-Z0-9]+?)(?:[-_](\w+?))?\.csv(?:\.gz)?$")

Row = tuple[int, str, str, str, str, str]


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """Symbol-less OHLCV rows of one market, ascending by ``open_ms``; values are decimal strings."""

    open_ms: np.ndarray  # int64
    open: tuple[str, ...]
    high: tuple[str, ...]
    low: tuple[str, ...]
    close: tuple[str, ...]
    volume: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.open_ms)

    def row(self, i: int) -> Row:
        """The ``i``-th row as ``(open_ms, open, high, low, close, volume)``."""
        return (int(self.open_ms[i]), self.open[i], self.high[i], self.low[i], self.close[i], self.volume[i])

    def rows(self) -> Iterator[Row]:
        for i in range(len(self)):
            yield self.row(i)

    def slice(self, start: int | None = None, stop: int | None = None) -> Series:
        """Rows ``start:stop`` as a new series."""
        s = slice(start, stop)
        return Series(self.open_ms[s].copy(), self.open[s], self.high[s], self.low[s], self.close[s],
                      self.volume[s])

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> Series:
        """Build a series from ``(open_ms, open, high, low, close, volume)`` tuples (not validated)."""
        cols: list[list] = [[], [], [], [], [], []]
        for r in rows:
            for c, v in zip(cols, r, strict=True):
                c.append(v)
        return cls(np.asarray(cols[0], dtype=np.int64), *(tuple(c) for c in cols[1:]))


def symbol_from_filename(path: str | Path) -> str:
    """``BTCUSDT-1h.csv.gz`` → ``'BTC/USDT'`` (quote one of FDUSD, USDT, USDC, BTC, ETH, BNB)."""
    name = Path(path).name
    m = _FILENAME_RE.match(name)
    if m:
        market = m.group(1)
        for quote in FILENAME_QUOTES:
            if market.endswith(quote) and len(market) > len(quote):
                return f"{market[: -len(quote)]}/{quote}"
    raise DataError(f"{path}: cannot infer a symbol from the file name; expected e.g. 'BTCUSDT-1h.csv.gz'")


def timeframe_from_filename(path: str | Path) -> str | None:
    """``BTCUSDT-1h.csv.gz`` → ``'1h'``; ``None`` when the name carries no known interval."""
    m = _FILENAME_RE.match(Path(path).name)
    tf = m.group(2) if m else None
    return tf if tf in TIMEFRAMES_MS else None


def _open_text(path: Path, mode: str) -> TextIO:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="ascii", newline="")
    return open(path, mode, encoding="ascii", newline="")


def load_ohlcv_csv(path: str | Path, timeframe_ms: int | None = None) -> Series:
    """Load and validate one OHLCV CSV file.

    ``timeframe_ms`` defaults to the interval in the file name (``-1h``), else one hour.
    """
    p = Path(path)
    if timeframe_ms is None:
        tf = timeframe_from_filename(p)
        timeframe_ms = TIMEFRAMES_MS[tf] if tf else TIMEFRAMES_MS["1h"]
    try:
        with _open_text(p, "r") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != HEADER:
                raise DataError(f"{p}: line 1: header must be {','.join(HEADER)}, got {header!r}")
            raw, lines = [], []
            for fields in reader:
                if fields:  # blank lines (a trailing newline too many) carry nothing
                    raw.append(fields)
                    lines.append(reader.line_num)
        if not raw:
            raise DataError(f"{p}: no data rows after the header")
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as exc:
        raise DataError(f"{p}: cannot read: {exc}") from exc
    return _parse_rows(str(p), raw, lines, timeframe_ms)


def _parse_rows(source: str, raw: list[list[str]], lines: list[int], timeframe_ms: int) -> Series:
    """Check every row's shape and numbers, then the vectorised bar rules."""
    for i, fields in enumerate(raw):
        if len(fields) != 6:
            raise DataError(f"{source}: line {lines[i]}: expected 6 fields, got {len(fields)}: {fields!r}")
    cols = [tuple(c) for c in zip(*raw, strict=True)] if raw else [()] * 6
    for name, col, pattern in zip(HEADER, cols, (_INT_RE,) + (_DECIMAL_RE,) * 5, strict=True):
        # One regex over the whole column; the per-row search runs only to name a bad line.
        joined = "\n".join(col)
        if col and (not pattern.fullmatch(joined) or joined.count("\n") != len(col) - 1):
            i = next(i for i, v in enumerate(col) if "\n" in v or not pattern.fullmatch(v))
            what = "an integer of milliseconds" if pattern is _INT_RE else "a plain decimal number"
            raise DataError(f"{source}: line {lines[i]}: {name} {col[i]!r} is not {what}")
    times = np.array([int(t) for t in cols[0]], dtype=np.int64)
    series = Series(times, *cols[1:])
    _check_bars(source, series, lines, timeframe_ms)
    return series


def _fail(source: str, lines: list[int], i: int, problem: str) -> DataError:
    return DataError(f"{source}: line {lines[i]}: {problem}")


def _check_bars(source: str, s: Series, lines: list[int], timeframe_ms: int) -> None:
    """Timestamps strictly increasing and aligned; prices positive; low ≤ open, close ≤ high; volume ≥ 0."""
    t = s.open_ms
    if len(t) > 1:
        bad = np.flatnonzero(np.diff(t) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise _fail(source, lines, i, f"open_time {t[i]} is not after the previous row's {t[i - 1]}")
    offset = _WEEK_OFFSET_MS if timeframe_ms == TIMEFRAMES_MS["1w"] else 0
    bad = np.flatnonzero((t - offset) % timeframe_ms != 0)
    if bad.size:
        i = int(bad[0])
        raise _fail(source, lines, i, f"open_time {t[i]} is not aligned to the {timeframe_ms} ms timeframe")
    o, h, lo, c, v = (np.array(col, dtype=np.float64) for col in (s.open, s.high, s.low, s.close, s.volume))
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        bad = np.flatnonzero(~(arr > 0) | ~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            raise _fail(source, lines, i, f"{name} {getattr(s, name)[i]} is not a positive finite price")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise _fail(source, lines, int(bad[0]), f"volume {s.volume[int(bad[0])]} is not finite")
    # Float comparison is exact except where two decimals round to the same double; those
    # ties are re-checked in Decimal below.
    lo_ok = lo <= np.minimum(o, c)
    hi_ok = h >= np.maximum(o, c)
    bad = np.flatnonzero(~lo_ok | ~hi_ok)
    if bad.size:
        i = int(bad[0])
        raise _fail(source, lines, i, f"low {s.low[i]} / high {s.high[i]} do not contain open {s.open[i]} "
                               f"and close {s.close[i]}")
    ties = np.flatnonzero((lo == np.minimum(o, c)) | (h == np.maximum(o, c)))
    for i in ties.tolist():
        do, dh, dl, dc = (Decimal(x[i]) for x in (s.open, s.high, s.low, s.close))
        if dl > min(do, dc) or dh < max(do, dc):
            raise _fail(source, lines, i, f"low {s.low[i]} / high {s.high[i]} do not contain open {s.open[i]} "
                                   f"and close {s.close[i]}")


def write_ohlcv_csv(path: str | Path, rows: Series | Iterable[Row]) -> None:
    """Write rows in the OHLCV CSV format (gzip-compressed when ``path`` ends in ``.gz``)."""
    p = Path(path)
    it = rows.rows() if isinstance(rows, Series) else rows
    with _open_text(p, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for r in it:
            w.writerow((int(r[0]), *r[1:]))
