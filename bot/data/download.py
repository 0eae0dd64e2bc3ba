"""``bot download``: closed klines from an exchange through ccxt into the OHLCV CSV files the replay server reads.

For each symbol, pages of at most 1000 bars are asked for from ``--since`` (or,
when the file exists, from its last bar + one timeframe) up to the last bar that
has **closed** before ``--until`` (default: now, by the exchange's clock).  Every
page is checked (:func:`bot.data.pages.check_page`) and appended, durably, to
a journal that is merged into the CSV file atomically (:mod:`bot.data.files`),
so a download interrupted in any way leaves a valid file and the next run
finishes it with no duplicate and no missing row.

Rows come, on Binance, from the raw ``GET /api/v3/klines`` endpoint through ccxt
(:func:`bot.feeds.backfill._page`), which keeps the exchange's exact decimal
strings; any other ccxt exchange with ``fetchOHLCV`` goes through ``fetch_ohlcv``
with ``exchange.number = str``.  ccxt's rate limiter is on; each request goes
through :func:`~bot.feeds.retry.call_with_retry` (HTTP 429/418 wait at least
``Retry-After``; network errors are retried with backoff).

Errors: :class:`ConfigError` for what the command line must fix (an unknown
exchange, symbol or timeframe — a ccxt ``BadSymbol`` is never retried),
:class:`DataError` for a refused file or page, :class:`FeedError` when the
exchange could not be reached after the retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async

from bot.config import TIMEFRAMES_MS
from bot.data.files import TargetFile
from bot.data.pages import Gap, check_page, file_name, first_open_at_or_after, fmt_ms, last_wanted_open
from bot.errors import ConfigError, DataError, FeedError
from bot.feeds.backfill import KLINES_PAGE_LIMIT, _page, make_exchange, point_at
from bot.feeds.replay.csvdata import FILENAME_QUOTES, symbol_from_filename
from bot.feeds.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

log = logging.getLogger("bot.download")   # the name it logged under as bot/download.py

# progress(symbol, bar periods done, bar periods expected); called at the start and after each page.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """What to download: ``[since_ms, until_ms)`` (``until_ms`` None: up to the last closed bar)."""

    symbols: tuple[str, ...]
    timeframe: str
    since_ms: int
    until_ms: int | None
    out_dir: Path
    gzip: bool = False


@dataclass(slots=True)
class SymbolResult:
    """The outcome for one symbol: its file and what this run added to it."""

    symbol: str
    path: Path
    rows: int = 0  # rows in the file now
    new_rows: int = 0
    resumed_after_ms: int | None = None  # the file's last bar before this run, when it existed
    first_ms: int | None = None
    last_ms: int | None = None
    wanted_last_ms: int = 0  # the last closed bar asked for
    gaps: list[Gap] = field(default_factory=list)
    overlap: int = 0  # rows of overlapping pages dropped as repeats


# ---------------------------------------------------------------------------
# The exchange
# ---------------------------------------------------------------------------

def make_download_exchange(exchange_id: str, rest_url: str | None = None,
                           timeout_s: float = 10.0) -> ccxt_async.Exchange:
    """A rate-limited async ccxt client for ``exchange_id`` with exact decimal strings, at ``rest_url`` if given."""
    if exchange_id == "binance":
        return make_exchange(rest_url, timeout_s)  # spot only, every API family pointed at rest_url
    if exchange_id not in ccxt.exchanges or not hasattr(ccxt_async, exchange_id):
        raise ConfigError(f"--exchange {exchange_id!r} is not a ccxt exchange id (e.g. binance, kraken, okx)")
    exchange = getattr(ccxt_async, exchange_id)({"enableRateLimit": True})
    exchange.number = str  # decimal strings as the exchange sent them, where its JSON has strings
    exchange.timeout = max(1, int(timeout_s * 1000))
    if not exchange.has.get("fetchOHLCV"):
        raise ConfigError(f"--exchange {exchange_id!r}: ccxt has no fetchOHLCV for it")
    if rest_url is not None:
        api = exchange.urls.get("api")
        if isinstance(api, dict) and isinstance(api.get("public"), str):
            point_at(exchange, rest_url)
        elif isinstance(api, dict):
            exchange.urls["api"] = {k: rest_url.rstrip("/") for k in api}
        else:
            exchange.urls["api"] = rest_url.rstrip("/")
    return exchange


@asynccontextmanager
async def open_download_exchange(exchange_id: str, rest_url: str | None = None,
                                 timeout_s: float = 10.0) -> AsyncIterator[ccxt_async.Exchange]:
    """:func:`make_download_exchange` that closes the client's HTTP session on exit."""
    exchange = make_download_exchange(exchange_id, rest_url, timeout_s)
    try:
        yield exchange
    finally:
        await exchange.close()


class Klines:
    """Pages of raw ``[open_ms, open, high, low, close, volume, …]`` rows of one market, with retries.

    ``raw`` (default: on Binance only) reads Binance's klines endpoint itself; otherwise ``fetch_ohlcv``.
    """

    def __init__(self, exchange: ccxt_async.Exchange, market: dict[str, Any], timeframe: str,
                 policy: RetryPolicy, raw: bool | None = None) -> None:
        self.exchange, self.market, self.timeframe, self.policy = exchange, market, timeframe, policy
        self.raw = exchange.id == "binance" if raw is None else raw
        self.symbol: str = market["symbol"]

    async def _call(self, fn: Callable[..., Any], *args: Any, what: str) -> Any:
        try:
            return await call_with_retry(fn, *args, what=f"{self.symbol} {what}", policy=self.policy,
                                         exchange=self.exchange, error_type=None)
        except ccxt.BadSymbol as exc:
            raise ConfigError(f"symbol {self.symbol} is refused by {self.exchange.id}: {exc}") from exc
        except ccxt.BaseError as exc:
            raise FeedError(f"{self.symbol} {what} failed: {type(exc).__name__}: {str(exc)[:300]}") from exc

    async def now_ms(self) -> int:
        """The exchange's clock where it tells it (Binance: ``GET /api/v3/time``), else this machine's."""
        if not self.exchange.has.get("fetchTime"):
            return int(time.time() * 1000)
        now = await self._call(self.exchange.fetch_time, what="server time")
        if isinstance(now, bool) or not isinstance(now, int) or now <= 0:
            raise FeedError(f"{self.exchange.id} server time is not a millisecond timestamp: {now!r:.60}")
        return now

    async def page(self, since_ms: int, last_ms: int, limit: int) -> list[Any]:
        """Up to ``limit`` bars opening at or after ``since_ms`` (and, on Binance, at or before ``last_ms``)."""
        what = f"{self.timeframe} klines from {fmt_ms(since_ms)}"
        if self.raw:
            return await self._call(_page, self.exchange, self.market["id"], self.timeframe, since_ms, last_ms,
                                    limit, what=what)
        rows = await self._call(self.exchange.fetch_ohlcv, self.symbol, self.timeframe, since_ms, limit, what=what)
        if not isinstance(rows, list):
            raise FeedError(f"{self.symbol} {what}: fetch_ohlcv gave {type(rows).__name__}, not a list")
        return rows


async def resolve_markets(exchange: ccxt_async.Exchange, symbols: tuple[str, ...], timeframe: str,
                          policy: RetryPolicy = DEFAULT_POLICY) -> list[dict[str, Any]]:
    """The ccxt market of each symbol (``BTC/USDT``, or the exchange's id ``BTCUSDT``), all checked before any
    download."""
    if timeframe not in TIMEFRAMES_MS:
        raise ConfigError(f"--timeframe {timeframe!r} is not one of {', '.join(TIMEFRAMES_MS)}")
    try:
        await call_with_retry(exchange.load_markets, what=f"{exchange.id} markets", policy=policy,
                              exchange=exchange, error_type=None)
    except ccxt.BaseError as exc:
        raise FeedError(f"{exchange.id} markets failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if exchange.timeframes and timeframe not in exchange.timeframes:
        raise ConfigError(f"--timeframe {timeframe!r}: {exchange.id} offers {', '.join(exchange.timeframes)}")
    markets = []
    for symbol in symbols:
        market = exchange.markets.get(symbol)
        if market is None:
            by_id = exchange.markets_by_id.get(symbol.upper()) if exchange.markets_by_id else None
            market = by_id[0] if by_id else None
        if market is None:
            raise ConfigError(f"symbol {symbol!r} is not a market of {exchange.id} (BadSymbol); "
                              "use the BASE/QUOTE form, e.g. BTC/USDT")
        markets.append(market)
    return markets


# ---------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------

def _symbol_in_name(path: Path) -> str | None:
    try:
        return symbol_from_filename(path)
    except DataError:
        return None


async def download_symbol(klines: Klines, request: DownloadRequest, progress: Progress | None = None,
                          now_ms: int | None = None) -> SymbolResult:
    """Download one symbol into its CSV file (see the module docstring); the file is valid however this ends."""
    tf = TIMEFRAMES_MS[request.timeframe]
    symbol, market = klines.symbol, klines.market
    path = request.out_dir / file_name(market["base"], market["quote"], request.timeframe, request.gzip)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    if _symbol_in_name(path) != symbol:
        log.warning("%s: bot replay-server and bot train will not read %s back as %s from the file name "
                    "(quote assets they recognise: %s)", symbol, path.name, symbol, ", ".join(FILENAME_QUOTES))
    target = TargetFile(path, tf)
    target.open()  # refuses a corrupt file; merges what an interrupted run left
    result = SymbolResult(symbol, path, resumed_after_ms=target.last_ms)
    first = first_open_at_or_after(request.since_ms, tf)
    if target.last_ms is not None:
        if target.first_ms is not None and target.first_ms > first:
            log.warning("%s starts at %s, after --since %s: earlier bars are not prepended (delete the file "
                        "to download them)", path, fmt_ms(target.first_ms), fmt_ms(first))
        start = target.last_ms + tf
    else:
        start = first
    last = last_wanted_open(request.until_ms, now_ms if now_ms is not None else await klines.now_ms(), tf)
    result.wanted_last_ms = last
    total = max(0, (last - first) // tf + 1)
    done = min(total, max(0, (start - first) // tf))

    def report(done: int) -> None:
        if progress is not None:
            progress(symbol, done, total)

    report(done)
    since = start
    try:
        while since <= last:
            limit = min(KLINES_PAGE_LIMIT, (last - since) // tf + 1)
            rows = await klines.page(since, last, limit)
            page = check_page(rows, what=f"{symbol} {request.timeframe} page from {fmt_ms(since)}",
                              timeframe_ms=tf, since_ms=since, last_ms=last, prev_open_ms=target.last_ms,
                              known=target.tail)
            result.overlap += page.overlap
            if not page.rows:
                break  # nothing from ``since`` to ``last``: the exchange's history ends here
            target.append(page.rows)
            result.gaps.extend(page.gaps)
            result.new_rows += len(page.rows)
            for gap in page.gaps:
                log.warning("%s: the exchange has no bars %s; kept as a gap", symbol, gap)
            since = page.rows[-1][0] + tf
            report(min(total, (since - first) // tf))
    finally:
        target.finish()  # merges the journal into the file, also on Ctrl-C or an error
    report(total)
    result.rows, result.first_ms, result.last_ms = target.rows, target.first_ms, target.last_ms
    return result


async def download(exchange: ccxt_async.Exchange, request: DownloadRequest, *, policy: RetryPolicy = DEFAULT_POLICY,
                   progress: Progress | None = None, raw: bool | None = None,
                   now_ms: int | None = None) -> list[SymbolResult]:
    """Download every symbol of ``request`` in turn (all symbols are checked first); one result per symbol.

    ``raw`` forces (or forbids) the Binance klines endpoint; ``now_ms`` replaces the exchange's clock.
    """
    if request.until_ms is not None and request.until_ms <= request.since_ms:
        raise ConfigError(f"--until ({fmt_ms(request.until_ms)}) must be after --since ({fmt_ms(request.since_ms)})")
    markets = await resolve_markets(exchange, request.symbols, request.timeframe, policy)
    results = []
    for market in markets:
        klines = Klines(exchange, market, request.timeframe, policy, raw)
        results.append(await download_symbol(klines, request, progress, now_ms))
        await asyncio.sleep(0)  # let a pending cancellation (Ctrl-C) in between symbols
    return results
