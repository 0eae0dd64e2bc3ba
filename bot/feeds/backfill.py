"""Closed candles through ccxt's async Binance client: the warm-up and the holes the stream left.

:func:`fetch_range` fetches the closed bars of a symbol between two open times,
a page (≤ 1000 bars) at a time, each request through
:func:`~bot.feeds.retry.call_with_retry` (transient failures are retried with
backoff, honouring ``Retry-After``).  Every row is checked with the same rules as
a websocket kline (:func:`bot.feeds.binance.validate_candle_fields`); a bad row
is rejected with its reason, logged and returned, never raised.  The only
exception either function raises is :class:`~bot.errors.FeedError` (or
:class:`~bot.errors.ConfigError` for an unknown timeframe).

The rows are read through ccxt's implicit endpoint ``publicGetKlines`` rather
than ``fetch_ohlcv``: ccxt still does the HTTP, the rate limiting and the error
mapping, but its OHLCV parser coerces or crashes on a hostile row (a ``None``
time makes its sort raise ``TypeError`` and loses the page), where each row must
be judged on its own.  Binance's JSON gives prices as exact decimal strings.

ccxt parses numbers with ``exchange.number``, ``float`` by default, and a float is
not the exchange's decimal (``Decimal(0.1)`` is 0.1000000000000000055…).  The raw
rows do not go through that parser; :func:`make_exchange` still sets
``exchange.number = str`` (a mode ccxt supports) for every other ccxt call.  A
number that does arrive as a float (a hostile row) becomes ``Decimal(repr(x))``:
the shortest string that reads back as the same double.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from bot.config import TIMEFRAMES_MS
from bot.errors import ConfigError, FeedError
from bot.events import Candle
from bot.feeds.binance import ROW_NAMES, bar_offset_ms, candle_from_fields
from bot.feeds.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

KLINES_PAGE_LIMIT = 1000  # Binance spot: at most 1000 klines per request
MAX_REJECTIONS_LOGGED = 20  # per fetch; the rest are only counted
Sleep = Callable[[float], Awaitable[object]]


def make_exchange(rest_url: str | None = None, timeout_s: float = 10.0) -> ccxt_async.binance:
    """A spot-only, rate-limited async Binance client, pointed at ``rest_url`` when given.

    ``rest_url`` is the spot REST base (``http://127.0.0.1:PORT/api/v3``).  Unless it is
    Binance's own, every other API family ccxt knows (sapi, fapi, …) is pointed at the
    same host as well, so a stray call fails locally instead of reaching the internet.
    ``timeout_s`` bounds each HTTP request (ccxt raises RequestTimeout, which is retried).
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
    exchange.timeout = max(1, int(timeout_s * 1000))  # ccxt counts milliseconds
    if rest_url is not None:
        point_at(exchange, rest_url)
    return exchange


def point_at(exchange: ccxt_async.Exchange, rest_url: str) -> None:
    """Point ``exchange``'s spot REST base at ``rest_url``, and every other API family at the same host.

    Nothing changes when ``rest_url`` is the exchange's own; otherwise a stray call to an API family
    that was not meant to be used (sapi, fapi, …) fails locally instead of reaching the internet.
    """
    base = rest_url.rstrip("/")
    if base == exchange.urls["api"]["public"]:
        return
    parts = urlsplit(base)
    root = f"{parts.scheme}://{parts.netloc}"
    api: dict[str, str] = {}
    for name, url in exchange.urls["api"].items():
        if isinstance(url, str):
            api[name] = root + urlsplit(url).path
    api.update(public=base, private=base, v1=root + "/api/v1")
    exchange.urls["api"] = api


@asynccontextmanager
async def open_exchange(rest_url: str | None = None,
                        timeout_s: float = 10.0) -> AsyncIterator[ccxt_async.binance]:
    """``make_exchange`` that closes the client's HTTP session on exit."""
    exchange = make_exchange(rest_url, timeout_s)
    try:
        yield exchange
    finally:
        await exchange.close()


async def unlisted_symbols(exchange: ccxt_async.Exchange, symbols: Sequence[str], *,
                           policy: RetryPolicy = DEFAULT_POLICY, sleep: Sleep = asyncio.sleep) -> list[str]:
    """The ``symbols`` the exchange does not trade, each with why; FeedError if its markets cannot be had.

    The markets come from ccxt's ``load_markets`` (Binance spot: ``GET /api/v3/exchangeInfo``), retried
    like every other request; a market whose status is not ``TRADING`` is inactive in ccxt.
    """
    try:
        await call_with_retry(exchange.load_markets, what="markets", policy=policy, exchange=exchange, sleep=sleep)
    except ccxt.BaseError as exc:
        raise FeedError(f"markets: {type(exc).__name__}: {exc}") from exc
    out: list[str] = []
    for symbol in symbols:
        market = exchange.markets.get(symbol)
        if market is None:
            out.append(f"{symbol} (not listed)")
        elif market.get("active") is False:
            out.append(f"{symbol} (listed, not trading)")
    return out


def _last_closed_open(now_ms: int, timeframe_ms: int) -> int:
    """Open time of the newest bar closed by ``now_ms`` (the bar holding ``now_ms`` is in progress)."""
    offset = bar_offset_ms(timeframe_ms)
    return (now_ms - offset) // timeframe_ms * timeframe_ms + offset - timeframe_ms


def _first_open_at_or_after(t_ms: int, timeframe_ms: int) -> int:
    offset = bar_offset_ms(timeframe_ms)
    return -((offset - t_ms) // timeframe_ms) * timeframe_ms + offset


def _timeframe_ms(timeframe: str) -> int:
    if timeframe not in TIMEFRAMES_MS:
        raise ConfigError(f"backfill timeframe {timeframe!r} unknown; allowed: {', '.join(TIMEFRAMES_MS)}")
    return TIMEFRAMES_MS[timeframe]


async def server_time_ms(exchange: ccxt_async.Exchange, *, what: str = "server time",
                         policy: RetryPolicy = DEFAULT_POLICY, sleep: Sleep = asyncio.sleep) -> int:
    """The exchange's clock (``GET /api/v3/time``), retried like every other request."""
    now = await call_with_retry(exchange.fetch_time, what=what, policy=policy, exchange=exchange, sleep=sleep)
    if isinstance(now, bool) or not isinstance(now, int) or now <= 0:
        raise FeedError(f"{what}: not a millisecond timestamp: {now!r:.60}")
    return now


async def _page(exchange: ccxt_async.Exchange, market_id: str, timeframe: str, since: int, end_open: int,
                limit: int) -> list[Any]:
    """One ``GET /api/v3/klines`` page; a body that is not a JSON array is a (retryable) BadResponse."""
    rows = await exchange.publicGetKlines({"symbol": market_id, "interval": timeframe, "startTime": since,
                                           "endTime": end_open, "limit": limit})
    if not isinstance(rows, list):
        raise ccxt.BadResponse(f"klines answer is not a JSON array: {str(rows)[:120]!r}")
    return rows


async def fetch_range(exchange: ccxt_async.Exchange, symbol: str, timeframe: str, start_ms: int, end_ms: int,
                      *, now_ms: int | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                      sleep: Sleep = asyncio.sleep) -> tuple[list[Candle], list[str]]:
    """The closed bars of ``symbol`` opening in ``[start_ms, end_ms]``, and the reasons rows were rejected.

    Pages forward from the first bar open at or after ``start_ms``, at most 1000 bars a
    request.  A bar is kept only if it closed before ``now_ms`` (default: the exchange's
    clock).  Rejected: rows that are not arrays of at least six fields, that fail the
    candle rules, that open outside the requested window or that repeat an open time
    already seen (the first one is kept).  Missing bars simply give fewer candles.
    Ascending, one candle per open time.  Raises only :class:`FeedError` (after
    retries, or at once for a non-retryable exchange error) and :class:`ConfigError`.
    """
    tf = _timeframe_ms(timeframe)
    what = f"{symbol} {timeframe} klines"
    try:
        await call_with_retry(exchange.load_markets, what=f"{what}: markets", policy=policy, exchange=exchange,
                              sleep=sleep)
        market_id = exchange.market(symbol)["id"]
    except ccxt.BaseError as exc:  # exchange.market() on an unknown symbol
        raise FeedError(f"{what}: {type(exc).__name__}: {exc}") from exc
    if now_ms is None:
        now_ms = await server_time_ms(exchange, what=f"{what}: server time", policy=policy, sleep=sleep)
    first = _first_open_at_or_after(start_ms, tf)
    last = min(end_ms, _last_closed_open(now_ms, tf))  # the bar holding now_ms is still open
    candles: dict[int, Candle] = {}
    rejections: list[str] = []

    def reject(reason: str) -> None:
        rejections.append(reason)
        if len(rejections) <= MAX_REJECTIONS_LOGGED:
            log.warning("%s: REST kline rejected: %s", symbol, reason)

    since = first
    while since <= last:
        limit = min(KLINES_PAGE_LIMIT, (last - since) // tf + 1)
        rows = await call_with_retry(_page, exchange, market_id, timeframe, since, last, limit,
                                     what=f"{what} from {since}", policy=policy, exchange=exchange, sleep=sleep)
        newest = None
        for row in rows:
            if not isinstance(row, list) or len(row) < 6:
                reject(f"bad row: expected an array of at least 6 fields, got {row!r:.80}")
                continue
            candle = candle_from_fields(symbol, row[0], row[6] if len(row) > 6 else None, *row[1:6],
                                        timeframe_ms=tf, now_ms=now_ms, names=ROW_NAMES)
            if isinstance(candle, str):
                reject(candle)
                continue
            t = candle.open_ms
            if not since <= t <= last:
                reject(f"outside range: bar opened at {t}, asked for {since}..{last}")
                continue
            if t in candles:
                reject(f"duplicate bar: open time {t} already received")
                continue
            candles[t] = candle
            newest = t if newest is None else max(newest, t)
        # An empty (or wholly rejected) page is a hole in the history longer than the page; step over it.
        since = newest + tf if newest is not None else since + limit * tf
    if rejections:
        log.warning("%s: %d REST kline row(s) rejected (%s)", what, len(rejections),
                    ", ".join(sorted({r.split(':', 1)[0] for r in rejections})))
    return [candles[t] for t in sorted(candles)], rejections


async def fetch_recent_candles(exchange: ccxt_async.Exchange, symbol: str, timeframe: str, n_bars: int,
                               until_ms: int | None = None, *, policy: RetryPolicy = DEFAULT_POLICY,
                               sleep: Sleep = asyncio.sleep) -> list[Candle]:
    """The closed candles of the last ``n_bars`` bar periods before ``until_ms`` (default: server time).

    :func:`fetch_range` over those periods: a bar is kept only if it closed before
    ``until_ms``; missing bars in the exchange's history give fewer candles; rejected
    rows are logged and left out.  Ascending, one candle per open time.
    """
    tf = _timeframe_ms(timeframe)
    if n_bars < 1:
        return []
    if until_ms is None:
        now_ms = await server_time_ms(exchange, what=f"{symbol} {timeframe} klines: server time", policy=policy,
                                      sleep=sleep)
    else:
        now_ms = until_ms
    last_open = _last_closed_open(now_ms, tf)
    candles, _ = await fetch_range(exchange, symbol, timeframe, last_open - (n_bars - 1) * tf, last_open,
                                   now_ms=now_ms, policy=policy, sleep=sleep)
    log.info("backfilled %d %s candles of %s up to %d", len(candles), timeframe, symbol, now_ms)
    return candles
