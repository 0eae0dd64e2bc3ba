"""Binance's kline wire format from OHLCV rows: pure formatting, no I/O.

A CSV row has open, high, low, close and volume; Binance klines also carry quote
volume, a trade count and taker volumes.  These are invented deterministically
from the row (see :func:`closed_bar`), and :func:`partial_bar` gives the
in-progress views of a bar that the stream sends before its closed kline.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from bot.feeds.replay.csvdata import Row

__all__ = ["BarFields", "closed_bar", "partial_bar", "price_step", "rest_kline"]

# Average notional per trade, only to invent a plausible trade count "n" for a bar.
_NOTIONAL_PER_TRADE = Decimal(500)
_Q8 = Decimal("1e-8")


def _fmt(d: Decimal) -> str:
    return format(d, "f")


def _quantum(*values: str) -> Decimal:
    """The finest decimal step among ``values`` (``'3713.0'``, ``'3689.88'`` → ``0.01``)."""
    places = max((len(v) - v.index(".") - 1) if "." in v else 0 for v in values)
    return Decimal(1).scaleb(-places)


@dataclass(frozen=True, slots=True)
class BarFields:
    """One bar's kline fields as Binance strings; ``trades`` is the count ``n``."""

    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int
    taker_base: str
    taker_quote: str


def closed_bar(row: Row) -> BarFields:
    """The closed bar's fields: the row's strings plus derived quote volume, trade count and taker volumes.

    The CSV has no quote or taker volumes, so they are invented deterministically:
    quote volume = volume × (O+H+L+C)/4, takers buy 55 % on an up bar, 45 % on a down bar.
    """
    _, o, h, lo, c, v = row
    do, dh, dl, dc, dv = Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v)
    # A quote volume to 1e-8 of a large volume at a large price needs more than the default 28 digits.
    with localcontext(prec=60):
        q = (dv * (do + dh + dl + dc) / 4).quantize(_Q8, ROUND_HALF_EVEN)
        n = 0 if dv == 0 else max(1, int(q / _NOTIONAL_PER_TRADE))
        share = Decimal("0.55") if dc > do else Decimal("0.45") if dc < do else Decimal("0.5")
        v_q = _quantum(v)
        return BarFields(o, h, lo, c, v, _fmt(q), n, _fmt((dv * share).quantize(v_q, ROUND_DOWN)),
                         _fmt((q * share).quantize(_Q8, ROUND_DOWN)))


def partial_bar(row: Row, k: int, n_updates: int) -> BarFields:
    """The bar as seen after ``k`` of ``n_updates + 1`` equal parts of its time have passed.

    The price walks linearly open → low → high → close on an up bar (open → high →
    low → close otherwise), quantized to the row's finest price step, so every
    partial high/low lies within the final ones; volumes grow in proportion to time.
    """
    _, o, h, lo, c, v = row
    final = closed_bar(row)
    do, dh, dl, dc = Decimal(o), Decimal(h), Decimal(lo), Decimal(c)
    knots = [do, dl, dh, dc] if dc >= do else [do, dh, dl, dc]
    frac = Decimal(k) / Decimal(n_updates + 1)
    pos = frac * 3  # position along the three legs of the path
    leg = min(int(pos), 2)
    a, b = knots[leg], knots[leg + 1]
    price = (a + (b - a) * (pos - leg)).quantize(_quantum(o, h, lo, c), ROUND_HALF_EVEN)
    seen = knots[: leg + 1] + [price]
    v_q = _quantum(v)
    with localcontext(prec=60):   # as in closed_bar: quote volumes to 1e-8 can pass 28 digits
        dv = (Decimal(v) * frac).quantize(v_q, ROUND_DOWN)
        dq = (Decimal(final.quote_volume) * frac).quantize(_Q8, ROUND_DOWN)
        return BarFields(o, _fmt(max(seen)), _fmt(min(seen)), _fmt(price), _fmt(dv), _fmt(dq),
                         int(final.trades * frac),
                         _fmt(min(Decimal(final.taker_base) * frac, dv).quantize(v_q, ROUND_DOWN)),
                         _fmt((Decimal(final.taker_quote) * frac).quantize(_Q8, ROUND_DOWN)))


def rest_kline(row: Row, timeframe_ms: int) -> list[Any]:
    """A row in the ``GET /api/v3/klines`` array format."""
    f = closed_bar(row)
    t = row[0]
    return [t, f.open, f.high, f.low, f.close, f.volume, t + timeframe_ms - 1, f.quote_volume, f.trades,
            f.taker_base, f.taker_quote, "0"]


def price_step(values: tuple[str, ...]) -> str:
    """Binance-style step string (8 decimals at least) from the finest step among ``values``."""
    step = _quantum(*values)
    return f"{step:.{max(8, -step.as_tuple().exponent)}f}"
