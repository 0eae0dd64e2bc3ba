"""Warm-up backfill: the last closed candles of a symbol through ccxt's async Binance client.

ccxt parses numbers with ``exchange.number``, ``float`` by default.  A float is
not the exchange's decimal: ``Decimal(0.1)`` is 0.1000000000000000055….
:func:`make_exchange` therefore sets ``exchange.number = str`` (a mode ccxt
supports), so OHLCV values arrive as the exchange's exact strings and become
:class:`~decimal.Decimal` without loss.  For an exchange built elsewhere that
still yields floats, ``Decimal(repr(x))`` is used: ``repr`` gives the shortest
string that reads back as the same double, which is the exchange's own decimal
whenever it has at most 15 significant digits (every Binance price does).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from bot.config import TIMEFRAMES_MS
from bot.errors import ConfigError, FeedError
from bot.events import Candle

log = logging.getLogger(__name__)

KLINES_PAGE_LIMIT = 1000  # Binance spot: at most 1000 klines per request
_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance weekly bars open on Mondays; the epoch was a Thursday


def make_exchange(rest_url: str | None = None) -> ccxt_async.binance:
    """A spot-only, rate-limited async Binance client, pointed at ``rest_url`` when given.

    ``rest_url`` is the spot REST base (``http://127.0.0.1:PORT/api/v3``).  Unless it is
    Binance's own, every other API family ccxt knows (sapi, fapi, …) is pointed at the
    same host as well, so a stray call fails locally instead of reaching the internet.
    Use it as ``async with make_exchange(url) as exchange:`` (ccxt closes its HTTP
    session on exit) or through :func:`open_exchange`.
    """
    exchange = ccxt_async.binance({
        "enableRateLimit": True,
        "options": {
            # Only GET /api/v3/exchangeInfo in load_markets: no futures (fapi/dapi) or margin (sapi) calls.
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"], "loadAllOptions": False},
            "fetchMargins": False,
            "fetchCurrencies": False,  # sapi capital/config/getall, and it needs API keys anyway
            "adjustForTimeDifference": False,
        },
    })
    exchange.number = str  # exact decimal strings instead of floats (see the module docstring)
    if rest_url is not None and rest_url.rstrip("/") != exchange.urls["api"]["public"]:
        base = rest_url.rstrip("/")
        parts = urlsplit(base)
        root = f"{parts.scheme}://{parts.netloc}"
        api: dict[str, str] = {}
        for name, url in exchange.urls["api"].items():
            if isinstance(url, str):
                api[name] = root + urlsplit(url).path
        api.update(public=base, private=base, v1=root + "/api/v1")
        exchange.urls["api"] = api
    return exchange


@asynccontextmanager
async def open_exchange(rest_url: str | None = None) -> AsyncIterator[ccxt_async.binance]:
    """``make_exchange`` that closes the client's HTTP session on exit."""
    exchange = make_exchange(rest_url)
    try:
        yield exchange
    finally:
        await exchange.close()


def _to_decimal(value: Any, symbol: str, what: str) -> Decimal:
    try:
        if isinstance(value, float):
            d = Decimal(repr(value))
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            d = Decimal(value)
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise FeedError(f"{symbol}: backfill got a malformed {what}: {value!r}") from None
    if not d.is_finite():
        raise FeedError(f"{symbol}: backfill got a malformed {what}: {value!r}")
    return d


def _last_closed_open(now_ms: int, timeframe_ms: int) -> int:
    """Open time of the newest bar closed by ``now_ms`` (the bar holding ``now_ms`` is in progress)."""
    offset = _WEEK_OFFSET_MS if timeframe_ms == TIMEFRAMES_MS["1w"] else 0
    return (now_ms - offset) // timeframe_ms * timeframe_ms + offset - timeframe_ms


async def fetch_recent_candles(exchange: ccxt_async.Exchange, symbol: str, timeframe: str, n_bars: int,
                               until_ms: int | None = None) -> list[Candle]:
    """The closed candles of the last ``n_bars`` bar periods before ``until_ms`` (default: server time).

    Pages forward with ``since`` from the first period, at most 1000 bars a request.
    A bar is kept only if it closed before ``until_ms``; missing bars in the
    exchange's history give fewer candles.  Ascending, one candle per open time.
    """
    if timeframe not in TIMEFRAMES_MS:
        raise ConfigError(f"backfill timeframe {timeframe!r} unknown; allowed: {', '.join(TIMEFRAMES_MS)}")
    if n_bars < 1:
        return []
    tf = TIMEFRAMES_MS[timeframe]
    try:
        now_ms = until_ms if until_ms is not None else int(await exchange.fetch_time())
        last_open = _last_closed_open(now_ms, tf)
        first_open = last_open - (n_bars - 1) * tf
        rows: dict[int, list[Any]] = {}
        since = first_open
        while since <= last_open:
            limit = min(KLINES_PAGE_LIMIT, (last_open - since) // tf + 1)
            page = await exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=limit,
                                              params={"until": last_open + tf - 1})
            for row in page:
                t = int(row[0])
                if first_open <= t <= last_open and t + tf - 1 < now_ms:
                    rows[t] = row
            newest = max((int(r[0]) for r in page), default=None)
            # An empty page is a hole in the history longer than the page; step over it.
            since = newest + tf if newest is not None and newest >= since else since + limit * tf
    except ccxt.BaseError as exc:
        raise FeedError(f"{symbol}: backfill of {timeframe} candles failed: {type(exc).__name__}: {exc}") from exc
    candles = [
        Candle(symbol, t, t + tf - 1, *(_to_decimal(v, symbol, name) for v, name in
                                        zip(rows[t][1:6], ("open", "high", "low", "close", "volume"),
                                            strict=True)))
        for t in sorted(rows)
    ]
    log.info("backfilled %d %s candles of %s up to %d", len(candles), timeframe, symbol, now_ms)
    return candles
