"""Binance kline messages → closed candles: a pure parser, no I/O.

A combined-stream frame looks like::

    {"stream": "btcusdt@kline_1h",
     "data": {"e": "kline", "E": 1700000000123, "s": "BTCUSDT",
              "k": {"t": 1699996400000, "T": 1699999999999, "s": "BTCUSDT", "i": "1h",
                    "o": "36500.01", "c": "36612.20", "h": "36650.00", "l": "36480.55",
                    "v": "812.4431", "x": true, ...}}}

:func:`parse_kline_frame` turns one frame into a :class:`Parsed`: a closed
candle, an ignored frame (intra-bar update, subscription reply) or a rejected
frame with the reason.  It never raises on bad input; the feed logs and counts
rejections and keeps running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from bot.events import Candle

Status = Literal["closed", "ignored", "rejected"]


@dataclass(frozen=True, slots=True)
class Parsed:
    status: Status
    candle: Candle | None = None
    reason: str = ""


def exchange_id(symbol: str) -> str:
    """'BTC/USDT' → 'BTCUSDT' (Binance's symbol id)."""
    return symbol.replace("/", "").upper()


def stream_name(symbol: str, timeframe: str) -> str:
    """'BTC/USDT', '1h' → 'btcusdt@kline_1h'."""
    return f"{exchange_id(symbol).lower()}@kline_{timeframe}"


def combined_stream_url(base_url: str, symbols: list[str] | tuple[str, ...], timeframe: str) -> str:
    """The combined-stream URL for these symbols, e.g. ``.../stream?streams=btcusdt@kline_1h/ethusdt@kline_1h``."""
    return f"{base_url.rstrip('/')}?streams=" + "/".join(stream_name(s, timeframe) for s in symbols)


def _reject(reason: str) -> Parsed:
    return Parsed("rejected", None, reason)


def _ms(value: Any, name: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"field k.{name} must be an integer millisecond timestamp, got {value!r:.40}"
    if not 0 < value < 10**14:
        return f"field k.{name}={value} is not a plausible millisecond timestamp"
    return value


def _price(value: Any, name: str) -> Decimal | str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"field k.{name} must be a decimal string, got {type(value).__name__}"
    if isinstance(value, str) and len(value) > 40:
        return f"field k.{name} is {len(value)} characters long"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return f"field k.{name}={value!r:.40} is not a number"
    if not d.is_finite():
        return f"field k.{name}={value!r:.40} is not finite"
    if abs(d.adjusted()) > 15:
        return f"field k.{name}={value!r:.40} is out of any plausible range"
    return d


def parse_kline_frame(
    raw: bytes | str,
    subscribed: Mapping[str, str],
    timeframe: str,
    timeframe_ms: int,
) -> Parsed:
    """Parse one websocket frame.

    ``subscribed`` maps Binance ids to ccxt symbols (``{"BTCUSDT": "BTC/USDT"}``).
    """
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _reject(f"malformed JSON: {str(exc):.80}")
    if not isinstance(msg, dict):
        return _reject(f"expected a JSON object, got {type(msg).__name__}")
    if "result" in msg and "id" in msg:
        return Parsed("ignored", None, "subscription reply")
    stream = msg.get("stream")
    data = msg["data"] if "data" in msg and stream is not None else msg
    if not isinstance(data, dict):
        return _reject("field data must be an object")
    event = data.get("e")
    if event != "kline":
        return Parsed("ignored", None, f"not a kline event: {str(event)[:40]!r}")
    k = data.get("k")
    if not isinstance(k, dict):
        return _reject("field k is missing or not an object")
    missing = [f for f in ("t", "T", "s", "i", "o", "h", "l", "c", "v", "x") if f not in k]
    if missing:
        return _reject(f"kline is missing field(s) {', '.join(missing)}")

    sym_id = k["s"]
    if not isinstance(sym_id, str) or sym_id not in subscribed:
        return _reject(f"unsubscribed symbol {str(sym_id)[:20]!r}")
    if stream is not None and stream != f"{sym_id.lower()}@kline_{timeframe}":
        return _reject(f"stream {str(stream)[:40]!r} does not match symbol {sym_id} and interval {timeframe}")
    if k["i"] != timeframe:
        return _reject(f"interval {str(k['i'])[:10]!r} is not the subscribed {timeframe!r}")
    if not isinstance(k["x"], bool):
        return _reject(f"field k.x must be true or false, got {k['x']!r:.20}")
    if not k["x"]:
        return Parsed("ignored", None, "intra-bar update")

    open_ms = _ms(k["t"], "t")
    if isinstance(open_ms, str):
        return _reject(open_ms)
    close_ms = _ms(k["T"], "T")
    if isinstance(close_ms, str):
        return _reject(close_ms)
    if open_ms % timeframe_ms:
        return _reject(f"open time {open_ms} is not aligned to {timeframe}")
    if close_ms != open_ms + timeframe_ms - 1:
        return _reject(f"close time {close_ms} does not end the {timeframe} bar opened at {open_ms}")

    values: dict[str, Decimal] = {}
    for name in ("o", "h", "l", "c", "v"):
        parsed = _price(k[name], name)
        if isinstance(parsed, str):
            return _reject(parsed)
        values[name] = parsed
    o, h, lo, c, v = (values[n] for n in ("o", "h", "l", "c", "v"))
    if min(o, h, lo, c) <= 0:
        return _reject(f"non-positive price in o={o} h={h} l={lo} c={c}")
    if v < 0:
        return _reject(f"negative volume {v}")
    if h < lo or h < max(o, c) or lo > min(o, c):
        return _reject(f"inconsistent prices: high={h} low={lo} open={o} close={c}")
    return Parsed("closed", Candle(subscribed[sym_id], open_ms, close_ms, o, h, lo, c, v))
