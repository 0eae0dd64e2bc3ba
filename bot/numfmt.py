"""Numbers for people: what messages, ``bot report``, ``bot status`` and the dashboard show.

Money to 2 decimals, prices and quantities to 6 significant digits (never in exponent form), a model's μ and σ
(log returns) in basis points.  The trade log and the CSV exports keep every digit; only text meant to be read
goes through here.
"""

from __future__ import annotations

import math
from decimal import Decimal

from bot.timefmt import format_duration

Number = Decimal | float | int


def money(x: Number | None) -> str:
    """``12,345.68``; ``-`` for none or a non-finite value."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:,.2f}"


def sig(x: Number | None, digits: int = 6) -> str:
    """``x`` to ``digits`` significant digits with thousands separators, trailing zeros dropped: ``26,602.9``,
    ``0.349574``, ``12,335.3``, ``1,234,568`` (an integer part longer than ``digits`` is kept whole)."""
    if x is None:
        return "-"
    v = float(x)
    if not math.isfinite(v):
        return "-"
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("0", "-0") else text


def bps(x: float | None, sign: bool = True) -> str:
    """A log return in basis points: ``+12.35 bps``."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 1e4:{'+' if sign else ''}.2f} bps"


def latency(ms: float | None) -> str:
    """A latency: ``850 ms`` under a second, ``2.35 s`` under a minute, then ``4m 10s`` (``-`` for none)."""
    if ms is None or not math.isfinite(ms):
        return "-"
    if abs(ms) < 1000:
        return f"{ms:.0f} ms"
    if abs(ms) < 60_000:
        return f"{ms / 1000:.2f} s"
    return format_duration(round(ms))


__all__ = ["money", "sig", "bps", "latency"]
