"""Binance kline messages → closed candles: a pure parser and candle validation, no I/O.

A combined-stream frame looks like::

    {"stream": "btcusdt@kline_1h",
     "data": {"e": "kline", "E": 1700000000123, "s": "BTCUSDT",
              "k": {"t": 1699996400000, "T": 1699999999999, "s": "BTCUSDT", "i": "1h",
                    "o": "36500.01", "c": "36612.20", "h": "36650.00", "l": "36480.55",
                    "v": "812.4431", "x": true, ...}}}

:func:`parse_kline_frame` turns one frame into a :class:`Parsed`: a closed
candle, an ignored frame (intra-bar update, subscription reply), a server
shutdown notice or a rejected frame with the reason.  It never raises on bad
input; the feed logs and counts rejections and keeps running.

:func:`validate_candle_fields` holds the rules every candle obeys, whichever
path it came by (websocket or REST backfill): integer millisecond times,
aligned to the timeframe and inside a plausible range, finite decimal prices
and volume of sane magnitude, positive prices, non-negative volume and
``low <= open, close <= high``.

Every rejection reason reads ``"<kind>: <detail>"``; :func:`reason_kind` gives
the kind (a short fixed phrase such as ``"bad number"``) for counting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from bot.events import Candle

Status = Literal["closed", "ignored", "rejected", "shutdown"]

# Binance spot opened in July 2017: an earlier bar is not Binance's.
EARLIEST_OPEN_MS = 1_483_228_800_000  # 2017-01-01 00:00 UTC
# How far past "now" an open time may lie before it is absurd (clock skew, a replay running ahead).
FUTURE_BARS_ALLOWED = 2
_WEEK_MS = 7 * 86_400_000
_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance weekly bars open on Mondays; the epoch was a Thursday
_MAX_NUMBER_CHARS = 40
_MAX_EXPONENT = 15  # |adjusted exponent| of a price or volume: 1e-15 .. 1e15
_PRICE_NAMES = ("o", "h", "l", "c", "v")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


@dataclass(frozen=True, slots=True)
class Parsed:
    status: Status
    candle: Candle | None = None
    reason: str = ""

    @property
    def kind(self) -> str:
        """The reason's kind (``"bad number"``), for counting rejections."""
        return reason_kind(self.reason)


def reason_kind(reason: str) -> str:
    """``"bad number: field k.o='x' is not a number"`` → ``"bad number"``."""
    return reason.split(":", 1)[0][:60]


def exchange_id(symbol: str) -> str:
    """'BTC/USDT' → 'BTCUSDT' (Binance's symbol id)."""
    return symbol.replace("/", "").upper()


def stream_name(symbol: str, timeframe: str) -> str:
    """'BTC/USDT', '1h' → 'btcusdt@kline_1h'."""
    return f"{exchange_id(symbol).lower()}@kline_{timeframe}"


def combined_stream_url(base_url: str, symbols: list[str] | tuple[str, ...], timeframe: str) -> str:
    """The combined-stream URL for these symbols, e.g. ``.../stream?streams=btcusdt@kline_1h/ethusdt@kline_1h``."""
    return f"{base_url.rstrip('/')}?streams=" + "/".join(stream_name(s, timeframe) for s in symbols)


def bar_offset_ms(timeframe_ms: int) -> int:
    """Where the bar grid starts relative to the epoch: Monday for weekly bars, else 0."""
    return _WEEK_OFFSET_MS if timeframe_ms == _WEEK_MS else 0


# ---------------------------------------------------------------------------
# Candle validation, shared by the websocket parser and the REST backfill
# ---------------------------------------------------------------------------

def _ms(value: Any, name: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"bad timestamp: field {name} must be an integer millisecond timestamp, got {value!r:.40}"
    if not 0 < value < 10**14:
        return f"bad timestamp: field {name}={value} is not a plausible millisecond timestamp"
    return value


def _number(value: Any, name: str) -> Decimal | str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"bad number: field {name} must be a decimal string, got {type(value).__name__}"
    if isinstance(value, str) and len(value) > _MAX_NUMBER_CHARS:
        return f"bad number: field {name} is {len(value)} characters long"
    try:
        # repr: the shortest string that reads back as the same double (see bot.feeds.backfill).
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return f"bad number: field {name}={value!r:.40} is not a number"
    if not d.is_finite():
        return f"bad number: field {name}={value!r:.40} is not finite"
    if isinstance(value, str) and not _DECIMAL_RE.fullmatch(value):
        # Decimal() also takes spaces and underscores ('1_000'); Binance never sends them.
        return f"bad number: field {name}={value!r:.40} is not a number"
    if d and abs(d.adjusted()) > _MAX_EXPONENT:
        return f"bad number: field {name}={value!r:.40} is out of any plausible range"
    return d


def _check_fields(open_ms: Any, close_ms: Any, values: tuple[Any, Any, Any, Any, Any], timeframe_ms: int,
                  now_ms: int | None, names: tuple[str, ...]) -> tuple[int, int, list[Decimal]] | str:
    t = _ms(open_ms, names[0])
    if isinstance(t, str):
        return t
    if close_ms is not None:
        tc = _ms(close_ms, names[1])
        if isinstance(tc, str):
            return tc
    else:
        tc = t + timeframe_ms - 1
    if t < EARLIEST_OPEN_MS:
        return f"timestamp out of range: open time {t} is before 2017-01-01"
    if now_ms is not None and t > now_ms + FUTURE_BARS_ALLOWED * timeframe_ms:
        return (f"timestamp out of range: open time {t} is more than {FUTURE_BARS_ALLOWED} bars "
                f"after now ({now_ms})")
    if (t - bar_offset_ms(timeframe_ms)) % timeframe_ms:
        return f"misaligned time: open time {t} is not aligned to the {timeframe_ms} ms bar"
    if tc != t + timeframe_ms - 1:
        return f"misaligned time: close time {tc} does not end the {timeframe_ms} ms bar opened at {t}"
    parsed: list[Decimal] = []
    for value, name in zip(values, names[2:], strict=True):
        d = _number(value, name)
        if isinstance(d, str):
            return d
        parsed.append(d)
    o, h, lo, c, v = parsed
    if min(o, h, lo, c) <= 0:
        return f"non-positive price: o={o} h={h} l={lo} c={c}"
    if v < 0:
        return f"negative volume: {v}"
    if h < lo or h < max(o, c) or lo > min(o, c):
        return f"inconsistent prices: high={h} low={lo} open={o} close={c}"
    return t, tc, parsed


_K_NAMES = ("k.t", "k.T", "k.o", "k.h", "k.l", "k.c", "k.v")
ROW_NAMES = ("open time", "close time", "open", "high", "low", "close", "volume")


def validate_candle_fields(open_ms: Any, close_ms: Any, o: Any, h: Any, lo: Any, c: Any, v: Any,
                           timeframe_ms: int, now_ms: int | None = None,
                           names: tuple[str, ...] = ROW_NAMES) -> str | None:
    """The reason these raw fields do not make a valid closed candle, or None if they do.

    Times must be integer UTC milliseconds; ``close_ms`` may be None (then it is
    implied).  Prices and volume are decimal strings (ints and floats accepted).
    With ``now_ms`` an open time more than two bars ahead of it is out of range;
    before 2017-01-01 always is.  ``names`` label the seven fields in reasons.
    """
    checked = _check_fields(open_ms, close_ms, (o, h, lo, c, v), timeframe_ms, now_ms, names)
    return checked if isinstance(checked, str) else None


def candle_from_fields(symbol: str, open_ms: Any, close_ms: Any, o: Any, h: Any, lo: Any, c: Any, v: Any,
                       timeframe_ms: int, now_ms: int | None = None,
                       names: tuple[str, ...] = ROW_NAMES) -> Candle | str:
    """A :class:`Candle` from raw fields checked by :func:`validate_candle_fields`, or the reason it is not one."""
    checked = _check_fields(open_ms, close_ms, (o, h, lo, c, v), timeframe_ms, now_ms, names)
    if isinstance(checked, str):
        return checked
    t, tc, (do, dh, dl, dc, dv) = checked
    return Candle(symbol, t, tc, do, dh, dl, dc, dv)


# ---------------------------------------------------------------------------
# Websocket frames
# ---------------------------------------------------------------------------

def _reject(reason: str) -> Parsed:
    return Parsed("rejected", None, reason)


def parse_kline_frame(
    raw: bytes | str,
    subscribed: Mapping[str, str],
    timeframe: str,
    timeframe_ms: int,
    now_ms: int | None = None,
) -> Parsed:
    """Parse one websocket frame.

    ``subscribed`` maps Binance ids to ccxt symbols (``{"BTCUSDT": "BTC/USDT"}``).
    ``now_ms`` (the receiver's clock) rejects klines opening more than two bars in its future.
    A ``{"e": "serverShutdown"}`` event (Binance announces a server going down this way)
    gives status ``"shutdown"``: the client should reconnect now.
    """
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _reject(f"malformed JSON: {str(exc):.80}")
    if not isinstance(msg, dict):
        return _reject(f"not an object: expected a JSON object, got {type(msg).__name__}")
    if "result" in msg and "id" in msg:
        return Parsed("ignored", None, "subscription reply")
    stream = msg.get("stream")
    data = msg["data"] if "data" in msg and stream is not None else msg
    if not isinstance(data, dict):
        return _reject("not an object: field data must be an object")
    event = data.get("e")
    if event == "serverShutdown":
        return Parsed("shutdown", None, "server shutdown announced")
    if event != "kline":
        return Parsed("ignored", None, f"not a kline event: {str(event)[:40]!r}")
    k = data.get("k")
    if not isinstance(k, dict):
        return _reject("not an object: field k is missing or not an object")
    missing = [f for f in ("t", "T", "s", "i", "o", "h", "l", "c", "v", "x") if f not in k]
    if missing:
        return _reject(f"missing field: kline is missing field(s) {', '.join(missing)}")

    sym_id = k["s"]
    if not isinstance(sym_id, str) or sym_id not in subscribed:
        return _reject(f"unsubscribed symbol: {str(sym_id)[:20]!r}")
    if stream is not None and stream != f"{sym_id.lower()}@kline_{timeframe}":
        return _reject(f"stream mismatch: stream {str(stream)[:40]!r} does not match symbol {sym_id} "
                       f"and interval {timeframe}")
    if k["i"] != timeframe:
        return _reject(f"wrong interval: interval {str(k['i'])[:10]!r} is not the subscribed {timeframe!r}")
    if not isinstance(k["x"], bool):
        return _reject(f"bad flag: field k.x must be true or false, got {k['x']!r:.20}")
    if not k["x"]:
        return Parsed("ignored", None, "intra-bar update")

    candle = candle_from_fields(subscribed[sym_id], k["t"], k["T"], *(k[n] for n in _PRICE_NAMES),
                                timeframe_ms=timeframe_ms, now_ms=now_ms, names=_K_NAMES)
    if isinstance(candle, str):
        return _reject(candle)
    return Parsed("closed", candle)
