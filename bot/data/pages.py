"""Pure rules of ``bot download``: times, file names, and the check of every page of klines.

No I/O here.  :func:`check_page` takes the rows one request returned and decides,
row by row, what goes into the CSV file:

* the page as a whole must be valid as the exchange sent it — every row an
  ``[open_ms, open, high, low, close, volume, …]`` array, open times strictly
  ascending (so no duplicates) and aligned to the timeframe, and the bar rules of
  :mod:`bot.feeds.replay.csvdata` (positive prices, low ≤ open, close ≤ high,
  volume ≥ 0) — or the whole page is refused with a :class:`DataError`; a bad
  row is never skipped, since skipping it would look like a gap the exchange has;
* rows before the requested start overlap what is already downloaded: they are
  dropped, after checking that they repeat the earlier rows exactly;
* rows after the last wanted bar (the bar still forming, or past ``--until``) are dropped;
* a hole between consecutive open times is a :class:`Gap` of the exchange's
  history: kept as it is (never filled) and reported.

Prices and volume stay the exchange's decimal strings; only a number that does not
arrive as a plain decimal string (a float from a non-Binance exchange, ``1e-05``)
is rewritten, exactly, in plain notation (:func:`plain_decimal`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.errors import ConfigError, DataError

# The bar grid (weekly bars open on Mondays) as the REST backfill computes it.
from bot.feeds.backfill import _first_open_at_or_after as first_open_at_or_after
from bot.feeds.backfill import _last_closed_open
from bot.feeds.replay.csvdata import Row, _parse_rows
from bot.timefmt import utc_minute

_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_EPOCH_MS_MIN = 10**11  # 1973-03-03 in ms; a smaller number is almost surely seconds


def parse_when(text: str, option: str) -> int:
    """``YYYY-MM-DD`` (UTC midnight) or epoch milliseconds → epoch ms; ConfigError naming ``option`` otherwise."""
    text = text.strip()
    if text.isdigit():
        ms = int(text)
        if ms < _EPOCH_MS_MIN:
            raise ConfigError(f"{option} {text} is too small for epoch milliseconds (seconds? multiply by 1000)")
        return ms
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is neither YYYY-MM-DD nor epoch milliseconds") from None
    return int(day.timestamp() * 1000)


def fmt_ms(ms: int) -> str:
    """Epoch ms → ``2024-01-01 00:00 UTC`` (for messages)."""
    return utc_minute(ms)


def last_wanted_open(until_ms: int | None, now_ms: int, timeframe_ms: int) -> int:
    """The open time of the last bar to download: before ``until_ms`` (exclusive) and closed at ``now_ms``.

    The bar holding ``now_ms`` is still forming, so the last closed one opened a bar earlier.
    """
    last_closed = _last_closed_open(now_ms, timeframe_ms)
    if until_ms is None:
        return last_closed
    return min(last_closed, first_open_at_or_after(until_ms, timeframe_ms) - timeframe_ms)


def file_name(base: str, quote: str, timeframe: str, gzip: bool) -> str:
    """``BTC``, ``USDT``, ``1h`` → ``BTCUSDT-1h.csv`` (``.csv.gz`` with ``gzip``): what replay-server reads."""
    return f"{base}{quote}-{timeframe}.csv{'.gz' if gzip else ''}"


def plain_decimal(value: Any) -> Any:
    """``value`` as a plain decimal string when it is an exact finite number, else unchanged (to be refused).

    A plain string (``'42000.10'``) is returned as it is.  A float becomes its shortest
    round-trip string first (``Decimal(repr(x))``), never its binary expansion.
    """
    if isinstance(value, str):
        if _PLAIN_DECIMAL.fullmatch(value):
            return value
        try:
            d = Decimal(value)
        except InvalidOperation:
            return value
    elif isinstance(value, bool):
        return value
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        return value
    if not d.is_finite() or d.is_signed():
        return value
    text = format(d, "f")
    return text if _PLAIN_DECIMAL.fullmatch(text) else value


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars the exchange does not have: open times ``first_ms`` … ``last_ms``, every ``timeframe_ms``."""

    first_ms: int
    last_ms: int
    timeframe_ms: int

    @property
    def bars(self) -> int:
        return (self.last_ms - self.first_ms) // self.timeframe_ms + 1

    def __str__(self) -> str:
        return f"{fmt_ms(self.first_ms)} .. {fmt_ms(self.last_ms)} ({self.bars} bars)"


@dataclass(frozen=True, slots=True)
class PageResult:
    """What one page adds: ``rows`` to write (ascending), and what was dropped or found missing."""

    rows: tuple[Row, ...]
    overlap: int  # rows before the requested start, identical to rows already downloaded
    beyond: int  # rows after the last wanted bar (still forming, or past --until)
    gaps: tuple[Gap, ...]  # holes before or between the new rows, after ``prev_open_ms``


def check_page(rows: Sequence[Any], *, what: str, timeframe_ms: int, since_ms: int, last_ms: int,
               prev_open_ms: int | None, known: Mapping[int, Row]) -> PageResult:
    """Validate one page of klines and return the rows it adds (see the module docstring).

    ``since_ms`` is the first open time asked for, ``last_ms`` the last one wanted,
    ``prev_open_ms`` the newest open time already written (None at the start) and
    ``known`` the rows already downloaded that an overlapping page may repeat.
    Raises :class:`DataError` naming ``what`` and the row (``line`` = row number in the page).
    """
    raw: list[list[str]] = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, (list, tuple)) or len(row) < 6:
            raise DataError(f"{what}: line {i}: expected an array of at least 6 fields, got {row!r:.80}")
        t = row[0]
        if isinstance(t, bool) or not isinstance(t, int):
            raise DataError(f"{what}: line {i}: open time {t!r:.40} is not an integer of milliseconds")
        fields = [str(t), *(plain_decimal(v) for v in row[1:6])]
        raw.append([f if isinstance(f, str) else repr(f) for f in fields])
    if not raw:
        return PageResult((), 0, 0, ())
    series = _parse_rows(what, raw, list(range(1, len(raw) + 1)), timeframe_ms)  # ascending, aligned, bar rules
    new: list[Row] = []
    overlap = beyond = 0
    for r in series.rows():
        t = r[0]
        if t < since_ms:
            before = known.get(t)
            if before is not None and before != r:
                raise DataError(f"{what}: the bar opened at {t} ({fmt_ms(t)}) came again with different values: "
                                f"{','.join(r[1:])} after {','.join(before[1:])}")
            overlap += 1
        elif t > last_ms:
            beyond += 1
        else:
            new.append(r)
    gaps = []
    prev = prev_open_ms
    for r in new:
        if prev is not None and r[0] - prev > timeframe_ms:
            gaps.append(Gap(prev + timeframe_ms, r[0] - timeframe_ms, timeframe_ms))
        prev = r[0]
    return PageResult(tuple(new), overlap, beyond, tuple(gaps))


def rows_to_csv(rows: Sequence[Row]) -> str:
    """Rows as CSV lines, each ending in ``\\n`` (the values need no quoting: digits and dots only)."""
    return "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}\n" for r in rows)
