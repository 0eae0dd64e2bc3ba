"""A local Binance look-alike: combined kline streams and a minimal REST API on one port.

:class:`ReplayExchange` replays OHLCV :class:`~bot.feeds.replay.csvdata.Series`
of many symbols through a real websocket server (``websockets`` asyncio
implementation) in Binance's wire formats, so the live feed and the ccxt
warm-up run unchanged against it:

* ``ws://HOST:PORT/stream?streams=btcusdt@kline_1h/ethusdt@kline_1h`` — combined
  stream events ``{"stream": ..., "data": {...}}``; ``/ws/<stream>[/<stream>…]``
  sends the bare ``data``.  ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS``
  requests are answered as Binance does.  Unknown stream names get nothing.
  https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
* ``http://HOST:PORT/api/v3/{ping,time,exchangeInfo,klines}`` — answered from
  the ``process_request`` hook with a plain HTTP/1.1 response (``Connection: close``).
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints

The replay clock starts when the first websocket client connects.  For each
bar time in the union of all series' timestamps, every symbol with a row there
gets ``updates_per_bar`` in-progress updates (``"x": false``) that reveal the
bar's path (open → first extreme → second extreme → close), then its closed
kline (``"x": true``) carrying exactly the file's strings.  The simulated
exchange time (``E`` and ``/api/v3/time``) walks through the bar and reaches
``T + 1`` with the closed kline.  REST klines show only closed bars: the history
before ``start_index`` and each streamed bar once its closed kline was sent.

Faults, for testing clients against what real exchanges do (dropped and
half-open connections, repeated, reordered and missing closed klines,
``serverShutdown``, arbitrary frames, REST errors and hostile kline rows), are
armed on ``exchange.faults``, the :class:`~bot.feeds.replay.faults.Faults` the
exchange holds (``exchange.faults.drop_connections()``).  The open connections and
every send to them are :class:`~bot.feeds.replay.streams.Connections`, which both
use.  ``max_connection_s`` closes every connection after that long (Binance: 24 h).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from bot.config import TIMEFRAMES_MS
from bot.errors import ConfigError
from bot.feeds.replay.csvdata import Series
from bot.feeds.replay.faults import Faults
from bot.feeds.replay.klines import BarFields, closed_bar, partial_bar, price_step, rest_kline
from bot.feeds.replay.responses import json_response
from bot.feeds.replay.streams import Connections, _Client, _Event

__all__ = ["KLINES_DEFAULT_LIMIT", "KLINES_MAX_LIMIT", "ReplayExchange"]

log = logging.getLogger("bot.replay")

KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
_SYMBOL_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)$")


# ---------------------------------------------------------------------------
# Markets
# ---------------------------------------------------------------------------

@dataclass(slots=True, eq=False)
class _Market:
    symbol: str  # ccxt form, BTC/USDT
    base: str
    quote: str
    series: Series
    stream: str  # btcusdt@kline_1h
    visible: int  # rows closed on the replay clock (served by REST)
    cursor: int  # next row to stream
    last_trade_id: int = 0
    steps: tuple[str, str] | None = None  # (price tick, quantity step), computed on first use

    @property
    def market_id(self) -> str:
        return self.base + self.quote


class _RestError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class ReplayExchange:
    """Replay OHLCV series as Binance kline streams plus REST on ``host:port`` (``port=0``: any free port).

    ``start_index`` indexes the union of all bar times: bars before it are history,
    served by REST only (default 0: everything is streamed).  ``max_bars`` caps the
    streamed bar times.  ``bar_interval_s`` is the pause after each bar time.  Faults are armed
    on :attr:`faults`.
    """

    def __init__(self, data: dict[str, Series], timeframe: str = "1h", host: str = "127.0.0.1",
                 port: int = 0, bar_interval_s: float = 0.05, updates_per_bar: int = 3,
                 start_index: int | None = None, max_bars: int | None = None,
                 max_connection_s: float | None = None) -> None:
        if timeframe not in TIMEFRAMES_MS:
            raise ConfigError(f"replay timeframe {timeframe!r} unknown; allowed: {', '.join(TIMEFRAMES_MS)}")
        if not data:
            raise ConfigError("replay needs at least one symbol's series")
        if bar_interval_s < 0 or updates_per_bar < 0:
            raise ConfigError("replay bar_interval_s and updates_per_bar must not be negative")
        if max_connection_s is not None and not max_connection_s > 0:
            raise ConfigError("replay max_connection_s must be positive")
        self.max_connection_s = max_connection_s
        self.timeframe = timeframe
        self.timeframe_ms = TIMEFRAMES_MS[timeframe]
        self._host, self._want_port = host, port
        self.bar_interval_s = bar_interval_s
        self.updates_per_bar = updates_per_bar
        self._timeline = np.unique(np.concatenate([s.open_ms for s in data.values()]))
        first = 0 if start_index is None else start_index
        if not 0 <= first <= len(self._timeline):
            raise ConfigError(f"replay start_index {first} is outside 0..{len(self._timeline)}")
        stop = len(self._timeline) if max_bars is None else min(len(self._timeline), first + max(0, max_bars))
        self._first_step, self._stop_step = first, stop
        start_ms = int(self._timeline[first]) if first < len(self._timeline) else None
        self._markets: dict[str, _Market] = {}
        for symbol, series in data.items():
            m = _SYMBOL_RE.match(symbol)
            if not m:
                raise ConfigError(f"replay symbol {symbol!r} is not in ccxt form BASE/QUOTE")
            base, quote = m.groups()
            seen = len(series) if start_ms is None else int(np.searchsorted(series.open_ms, start_ms))
            stream = f"{(base + quote).lower()}@kline_{timeframe}"
            self._markets[base + quote] = _Market(symbol, base, quote, series, stream, seen, seen)
        # Before the first streamed bar every history bar is closed; with nothing to stream, after the last.
        if start_ms is not None:
            self._now_ms = start_ms
        else:
            self._now_ms = int(self._timeline[-1]) + self.timeframe_ms
        self._server: Server | None = None
        self._port: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._connections = Connections()
        self._client_connected = asyncio.Event()
        self._stopped = False
        self.finished = asyncio.Event()
        self.bars_sent = 0  # bar times whose closed klines have all been broadcast
        # Path and query of the latest REST requests, oldest first (for tests and the curious operator).
        self.rest_requests: deque[str] = deque(maxlen=10_000)
        self.connections = 0  # websocket connections accepted
        self.lifetime_closes = 0  # connections closed after max_connection_s
        self.faults = Faults(self._connections, lambda: self._now_ms)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen and arm the replay clock (it starts with the first websocket client)."""
        if self._server is not None:
            return
        self._server = await serve(
            self._handler, self._host, self._want_port, process_request=self._process_request,
            # Binance streams are uncompressed; a client that stopped reading must not hold stop() for long.
            compression=None, close_timeout=2.0, logger=logging.getLogger("bot.replay.ws"))
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._task = asyncio.create_task(self._run(), name="replay-clock")
        log.info("replay exchange on %s and %s: %d symbols (%s), %s bars, %d history bar times, "
                 "%d to stream, %.3f s per bar", self.ws_url, self.rest_url, len(self._markets),
                 ", ".join(m.symbol for m in self._markets.values()), self.timeframe,
                 self._first_step, self._stop_step - self._first_step, self.bar_interval_s)

    async def stop(self) -> None:
        """Stop the clock, close every connection and free the port; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        await self.faults.aclose()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            log.info("replay exchange stopped after %d bar times", self.bars_sent)

    async def __aenter__(self) -> ReplayExchange:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port listened on (kept after :meth:`stop`)."""
        if self._port is None:
            raise RuntimeError("replay exchange not started")
        return self._port

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}/stream"

    @property
    def rest_url(self) -> str:
        return f"http://{self._host}:{self.port}/api/v3"

    @property
    def closed_sent(self) -> deque[tuple[str, int]]:
        """(symbol, open_ms) of each closed kline frame handed to a client's connection, oldest first."""
        return self._connections.closed_sent

    @property
    def now_ms(self) -> int:
        """The simulated exchange time."""
        return self._now_ms

    def stream_name(self, symbol: str) -> str:
        """``'BTC/USDT'`` → ``'btcusdt@kline_1h'``."""
        return f"{symbol.replace('/', '').lower()}@kline_{self.timeframe}"

    # -- replay clock --------------------------------------------------------

    async def _run(self) -> None:
        if self._first_step < self._stop_step:
            await self._client_connected.wait()
            log.info("replay clock started")
            for step in range(self._first_step, self._stop_step):
                await self._replay_bar(int(self._timeline[step]))
                self.bars_sent += 1
                await asyncio.sleep(self.bar_interval_s)
        log.info("replay finished: %d bar times sent", self.bars_sent)
        self.finished.set()

    async def _replay_bar(self, t: int) -> None:
        due = [m for m in self._markets.values()
               if m.cursor < len(m.series) and int(m.series.open_ms[m.cursor]) == t]
        rows = [m.series.row(m.cursor) for m in due]
        steps = self.updates_per_bar + 1
        for k in range(1, steps + 1):
            self._now_ms = t + self.timeframe_ms * k // steps  # the close at T + 1
            events = []
            closed = k == steps
            for m, row in zip(due, rows, strict=True):
                bar = closed_bar(row) if closed else partial_bar(row, k, self.updates_per_bar)
                events.append(_Event(m.stream, self._kline_event(m, t, bar, closed),
                                     (m.symbol, t) if closed else None))
            await self._broadcast(self.faults.closed_klines(events) if closed else events)
        for m in due:
            m.cursor += 1
            m.visible = m.cursor

    def _kline_event(self, m: _Market, t: int, bar: BarFields, closed: bool) -> str:
        first_id = m.last_trade_id + 1
        last_id = m.last_trade_id + bar.trades
        if closed:
            m.last_trade_id = last_id
        k = {"t": t, "T": t + self.timeframe_ms - 1, "s": m.market_id, "i": self.timeframe,
             "f": first_id if bar.trades else -1, "L": last_id if bar.trades else -1,
             "o": bar.open, "c": bar.close, "h": bar.high, "l": bar.low, "v": bar.volume,
             "n": bar.trades, "x": closed, "q": bar.quote_volume, "V": bar.taker_base,
             "Q": bar.taker_quote, "B": "0"}
        data = {"e": "kline", "E": self._now_ms, "s": m.market_id, "k": k}
        return json.dumps(data, separators=(",", ":"))

    async def _broadcast(self, events: list[_Event]) -> None:
        if not self.faults.withheld(events):
            await self._connections.broadcast(events)

    # -- websocket side ------------------------------------------------------

    @staticmethod
    def _ws_client(path: str) -> _Client | None:
        """The subscription a websocket path asks for, or ``None`` if the path is not a stream path."""
        url = urlsplit(path)
        if url.path == "/stream":
            streams = dict(parse_qsl(url.query)).get("streams", "")
            return _Client(True, {s for s in streams.split("/") if s})
        if url.path == "/ws" or url.path.startswith("/ws/"):
            return _Client(False, {s for s in url.path[len("/ws"):].split("/") if s})
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        client = self._ws_client(ws.request.path) or _Client(True)
        self._connections.add(ws, client)
        self.connections += 1
        log.info("client %s subscribed to %s", ws.remote_address, sorted(client.streams))
        self._client_connected.set()
        self.faults.on_connect(ws)
        try:
            async with asyncio.timeout(self.max_connection_s):
                async for message in ws:
                    reply = self._control(client, message)
                    if reply is not None:
                        await ws.send(reply)
        except ConnectionClosed:
            pass
        except TimeoutError:
            # Binance closes every connection after 24 h; here after max_connection_s.
            self.lifetime_closes += 1
            self._connections.discard(ws)
            log.info("closing client %s: connection lifetime of %.3f s reached", ws.remote_address,
                     self.max_connection_s)
            await ws.close(CloseCode.GOING_AWAY, "connection lifetime reached")
        finally:
            self._connections.discard(ws)
            self.faults.on_disconnect(ws)

    @staticmethod
    def _control(client: _Client, message: str | bytes) -> str | None:
        """Answer a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request as Binance does."""
        try:
            req = json.loads(message)
            method, req_id = req["method"], req.get("id")
            params = req.get("params", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise ValueError("params must be a list of stream names")
        except (ValueError, KeyError, TypeError, AttributeError):
            return json.dumps({"error": {"code": 2, "msg": "Invalid request"}})
        if method == "SUBSCRIBE":
            client.streams.update(params)
            return json.dumps({"result": None, "id": req_id})
        if method == "UNSUBSCRIBE":
            client.streams.difference_update(params)
            return json.dumps({"result": None, "id": req_id})
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(client.streams), "id": req_id})
        return json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                           "id": req_id})

    def _process_request(self, connection: ServerConnection,
                         request: Request) -> Response | Awaitable[Response] | None:
        path = urlsplit(request.path).path
        if path.startswith("/api/"):
            return self._rest(request)
        if self._ws_client(request.path) is not None:
            return None  # let websockets run the handshake (or answer 426 to plain HTTP)
        return json_response(404, {"code": -1, "msg": f"Not found: {path}"})

    # -- REST side -----------------------------------------------------------

    def _rest(self, request: Request) -> Response | Awaitable[Response]:
        url = urlsplit(request.path)
        self.rest_requests.append(request.path)
        fault = self.faults.rest_answer(request.path)
        if fault is not None:
            return fault
        try:
            if request.method != "GET":
                raise _RestError(405, -1, f"Method {request.method} not allowed")
            pairs = parse_qsl(url.query, keep_blank_values=True)
            query = dict(pairs)
            if len(query) != len(pairs):
                raise _RestError(400, -1101, "Duplicate values for a parameter detected.")
            body = self._route(url.path, query)
            if url.path == "/api/v3/klines":
                body = self.faults.hostile_klines(body)
        except _RestError as exc:
            log.debug("REST %s -> %d %s", request.path, exc.status, exc.msg)
            return json_response(exc.status, {"code": exc.code, "msg": exc.msg})
        return json_response(200, body)

    def _route(self, path: str, query: dict[str, str]) -> object:
        if path == "/api/v3/ping":
            self._check_params(query, set())
            return {}
        if path == "/api/v3/time":
            self._check_params(query, set())
            return {"serverTime": self._now_ms}
        if path == "/api/v3/exchangeInfo":
            self._check_params(query, {"symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"})
            return self._exchange_info(query)
        if path == "/api/v3/klines":
            self._check_params(query, {"symbol", "interval", "startTime", "endTime", "limit", "timeZone"})
            return self._klines(query)
        raise _RestError(404, -1, f"Not found: {path}")

    @staticmethod
    def _check_params(query: dict[str, str], allowed: set[str]) -> None:
        read = [k for k in query if k in allowed]
        if len(read) != len(query):
            raise _RestError(400, -1104, f"Not all sent parameters were read; read '{len(read)}' "
                                         f"parameter(s) but was sent '{len(query)}'.")

    def _market(self, market_id: str | None, param: str = "symbol") -> _Market:
        if not market_id:
            raise _RestError(400, -1102, f"Mandatory parameter '{param}' was not sent, was empty/null, "
                                         "or malformed.")
        m = self._markets.get(market_id)
        if m is None:
            raise _RestError(400, -1121, "Invalid symbol.")
        return m

    @staticmethod
    def _int_param(query: dict[str, str], name: str) -> int | None:
        raw = query.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"[0-9]{1,20}", raw):
            raise _RestError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                         "legal range is '^[0-9]{1,20}$'.")
        return int(raw)

    def _klines(self, query: dict[str, str]) -> list[list[Any]]:
        m = self._market(query.get("symbol"))
        interval = query.get("interval")
        if not interval:
            raise _RestError(400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval != self.timeframe:  # only the replayed timeframe exists here
            raise _RestError(400, -1120, "Invalid interval.")
        limit = self._int_param(query, "limit")
        if limit is None:
            limit = KLINES_DEFAULT_LIMIT
        elif limit < 1:
            raise _RestError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, KLINES_MAX_LIMIT)
        start, end = self._int_param(query, "startTime"), self._int_param(query, "endTime")
        if start is not None and end is not None and start > end:
            raise _RestError(400, -1023, "Start time is greater than end time.")
        opens = m.series.open_ms[: m.visible]
        hi = len(opens) if end is None else int(np.searchsorted(opens, end, "right"))
        if start is not None:
            lo = int(np.searchsorted(opens, start, "left"))
            hi = min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        return [rest_kline(m.series.row(i), self.timeframe_ms) for i in range(lo, max(lo, hi))]

    def _exchange_info(self, query: dict[str, str]) -> dict[str, Any]:
        markets = list(self._markets.values())
        if "symbol" in query:
            markets = [self._market(query["symbol"])]
        elif "symbols" in query:
            try:
                ids = json.loads(query["symbols"])
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise ValueError
            except ValueError:
                raise _RestError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
            markets = [self._market(i) for i in ids]
        return {
            "timezone": "UTC",
            "serverTime": self._now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in markets],
        }

    @staticmethod
    def _symbol_info(m: _Market) -> dict[str, Any]:
        if m.steps is None:
            s = m.series
            m.steps = (price_step(s.open + s.high + s.low + s.close), price_step(s.volume))
        tick, step = m.steps
        return {
            "symbol": m.market_id, "status": "TRADING",
            "baseAsset": m.base, "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True, "amendAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000000.00000000", "stepSize": step},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000000.00000000",
                 "stepSize": "0.00000000"},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }
