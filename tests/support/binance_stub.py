"""A local Binance spot REST stub on loopback: the trading endpoints the exchange executor uses.

:class:`BinanceSpotStub` is a real HTTP server (``aiohttp.web``, which ccxt
already depends on) that speaks the subset of Binance's spot REST API that
ccxt's ``binance`` class calls for our orders, with Binance's JSON shapes, so
that ccxt's request signing and response parsing run for real in tests:

* public: ``GET /api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo``
  (``PRICE_FILTER`` tickSize, ``LOT_SIZE`` stepSize, ``NOTIONAL`` minNotional);
* signed (``X-MBX-APIKEY`` header, ``timestamp``, ``recvWindow`` and an
  HMAC-SHA256 ``signature`` over the query string followed by the body, as
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security-type
  defines it): ``GET /api/v3/account``, ``POST/GET/DELETE /api/v3/order``,
  ``GET /api/v3/openOrders``, ``GET /api/v3/myTrades``.

Errors come as Binance sends them (``{"code": -2010, "msg": ...}``): -2010
insufficient balance and duplicate client order id (``newClientOrderId`` must
be unique among *open* orders only, as on Binance), -1013 filter failures,
-2011 / -2013 unknown order, -1022 bad signature, -2015 bad API key, -1021
timestamp outside the receive window, HTTP 429 / 418 with ``Retry-After``.

The matching engine is deterministic: a MARKET order fills at once at the
symbol's last price in ``market_fill_parts`` trades; a LIMIT order rests
(its funds locked) and fills when :meth:`set_price` crosses it, or partly when
a test calls :meth:`fill`.  Commission is ``fee_rate`` of each trade, charged
in the asset received (base for a buy, quote for a sell), as Binance does
without BNB fee payment.

Faults are scriptable (:meth:`fail_next`): the next N requests to a path answer
an error status, or are processed and then answered only after a delay (a
client timeout after the order went in).  Every request is recorded in
:attr:`requests`; :attr:`placements` counts accepted orders per client id.
Bind it to loopback only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

_Q8 = Decimal("0.00000001")
MSG_BALANCE = "Account has insufficient balance for requested action."
MSG_DUPLICATE = "Duplicate order sent."


def _fmt(d: Decimal) -> str:
    """Binance's decimal strings: eight places (``"0.00100000"``)."""
    return f"{d.quantize(_Q8):f}"


@dataclass(slots=True)
class StubMarket:
    """One spot symbol's filters (``BTC/USDT`` → id ``BTCUSDT``)."""

    base: str
    quote: str
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")

    @property
    def market_id(self) -> str:
        return self.base + self.quote


@dataclass(slots=True)
class StubOrder:
    order_id: int
    client_id: str
    market: StubMarket
    side: str             # BUY / SELL
    type: str             # MARKET / LIMIT
    qty: Decimal
    price: Decimal        # the limit price; 0 for MARKET
    tif: str
    time_ms: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_ms: int = 0
    locked: Decimal = Decimal(0)    # funds still locked for a resting order
    fills: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Fault:
    status: int
    code: int | None
    msg: str
    retry_after: int | None
    delay_s: float          # > 0: process the request, then answer only after this long


class _ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


class BinanceSpotStub:
    """Binance spot REST trading endpoints on ``127.0.0.1`` (see the module docstring)."""

    ORDER_PATH = "/api/v3/order"

    def __init__(self, markets: dict[str, StubMarket], prices: dict[str, Decimal], balances: dict[str, Decimal],
                 *, api_key: str, api_secret: str, fee_rate: Decimal = Decimal("0.001"),
                 market_fill_parts: int = 1, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the Binance stub binds to loopback only, not {host!r}")
        self.markets = {m.market_id: m for m in markets.values()}
        self.symbols = {m.market_id: s for s, m in markets.items()}
        self.prices = {markets[s].market_id: Decimal(p) for s, p in prices.items()}
        self.free: dict[str, Decimal] = {a: Decimal(v) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = {a: Decimal(0) for a in balances}
        self.api_key, self._secret = api_key, api_secret.encode()
        self.fee_rate = fee_rate
        self.market_fill_parts = market_fill_parts
        self.orders: dict[int, StubOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []   # (method, path, params)
        self.placements: Counter[str] = Counter()                  # accepted orders per client id
        self._faults: dict[tuple[str, str], deque[_Fault]] = {}
        self._next_order, self._next_trade = 1000, 5000
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> BinanceSpotStub:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> BinanceSpotStub:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def rest_url(self) -> str:
        """The spot REST base to give ccxt (``[exchange] rest_url``)."""
        return f"http://{self._host}:{self._port}/api/v3"

    # -- test controls ---------------------------------------------------------------------------

    def fail_next(self, method: str, path: str, n: int = 1, *, status: int = 429, code: int | None = -1003,
                  msg: str = "Too many requests.", retry_after: int | None = None, delay_s: float = 0.0) -> None:
        """The next ``n`` ``method path`` requests answer ``status`` (or, with ``delay_s``, are processed
        and answered that late: a client timeout after the exchange acted)."""
        q = self._faults.setdefault((method.upper(), path), deque())
        q.extend(_Fault(status, code, msg, retry_after, delay_s) for _ in range(n))

    def order_requests(self, method: str = "POST") -> list[dict[str, str]]:
        """The parameters of every order request (``ORDER_PATH``) with ``method`` seen so far."""
        return [p for m, path, p in self.requests if m == method and path == self.ORDER_PATH]

    def balance(self, asset: str) -> Decimal:
        return self.free.get(asset, Decimal(0)) + self.locked.get(asset, Decimal(0))

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the last price; resting limit orders it crosses fill in full at their limit."""
        mid = self._market_of(symbol).market_id
        self.prices[mid] = Decimal(price)
        for order in list(self.orders.values()):
            if order.market.market_id != mid or order.status not in ("NEW", "PARTIALLY_FILLED"):
                continue
            crosses = price <= order.price if order.side == "BUY" else price >= order.price
            if crosses:
                self._trade(order, order.qty - order.executed, order.price, maker=True)

    def fill(self, client_id: str, qty: Decimal) -> None:
        """Fill ``qty`` of the open order ``client_id`` at its limit price (a partial fill)."""
        order = self._open_by_client(client_id)
        if order is None:
            raise KeyError(f"no open order {client_id!r}")
        self._trade(order, min(Decimal(qty), order.qty - order.executed), order.price, maker=True)

    def cancel_all(self) -> None:
        """Cancel every open order (an operator acting by hand on the exchange)."""
        for o in self.orders.values():
            if o.status in ("NEW", "PARTIALLY_FILLED"):
                self._release(o)
                o.status = "CANCELED"

    # -- HTTP ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        self.requests.append((request.method, request.path, params))
        fault = None
        queue = self._faults.get((request.method, request.path))
        if queue:
            fault = queue.popleft()
        try:
            if fault is not None and fault.delay_s <= 0:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                raise _ApiError(fault.status, fault.code if fault.code is not None else -1000, fault.msg, headers)
            data = self._route(request, params, body)
            status, headers = 200, {}
        except _ApiError as exc:
            data, status, headers = {"code": exc.code, "msg": exc.msg}, exc.status, exc.headers
        if fault is not None and fault.delay_s > 0:
            await asyncio.sleep(fault.delay_s)
        return web.json_response(data, status=status, headers=headers)

    # Unsigned paths under PREFIX: ping, time, exchangeInfo.  Signed endpoints come from _signed_routes().
    PREFIX = "/api/v3"

    def _signed_routes(self) -> dict[tuple[str, str], Callable[[dict[str, str]], Any]]:
        return {("GET", "/api/v3/account"): self._account, ("POST", "/api/v3/order"): self._new_order,
                ("GET", "/api/v3/order"): self._query_order, ("DELETE", "/api/v3/order"): self._cancel_order,
                ("GET", "/api/v3/openOrders"): self._open_orders, ("GET", "/api/v3/myTrades"): self._my_trades}

    def _route(self, request: web.Request, params: dict[str, str], body: str) -> Any:
        method, path = request.method, request.path
        if path == f"{self.PREFIX}/ping":
            return {}
        if path == f"{self.PREFIX}/time":
            return {"serverTime": _now_ms()}
        if path == f"{self.PREFIX}/exchangeInfo":
            return self._exchange_info()
        handler = self._signed_routes().get((method, path))
        if handler is None:
            raise _ApiError(404, -1000, f"stub: {method} {path} is not served")
        self._authenticate(request, params, body)
        return handler(params)

    def _authenticate(self, request: web.Request, params: dict[str, str], body: str) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = request.query_string + body   # Binance: totalParams = query string + request body
        payload, sep, signature = total.rpartition("&signature=")
        if not sep or "&" in signature:
            raise _ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            raise _ApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, "
                                        "or malformed.") from None
        if window > 60_000:
            raise _ApiError(400, -1131, "recvWindow must be less than 60000")
        now = _now_ms()
        if ts > now + 1000 or now - ts > window:
            raise _ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _exchange_info(self) -> dict[str, Any]:
        symbols = [{
            "symbol": m.market_id, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
            "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _fmt(m.tick), "maxPrice": "1000000.00000000",
                 "tickSize": _fmt(m.tick)},
                {"filterType": "LOT_SIZE", "minQty": _fmt(m.min_qty), "maxQty": "9000.00000000",
                 "stepSize": _fmt(m.step)},
                {"filterType": "NOTIONAL", "minNotional": _fmt(m.min_notional), "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        } for m in self.markets.values()]
        return {"timezone": "UTC", "serverTime": _now_ms(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}],
            "exchangeFilters": [], "symbols": symbols}

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        assets = sorted(set(self.free) | set(self.locked))
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                    "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": _now_ms(),
                "accountType": "SPOT", "permissions": ["SPOT"], "uid": 354937868,
                "balances": [{"asset": a, "free": _fmt(self.free.get(a, Decimal(0))),
                              "locked": _fmt(self.locked.get(a, Decimal(0)))} for a in assets]}

    # -- orders ----------------------------------------------------------------------------------

    def _market(self, params: dict[str, str]) -> StubMarket:
        mid = params.get("symbol", "")
        if mid not in self.markets:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return self.markets[mid]

    def _market_of(self, symbol: str) -> StubMarket:
        return next(m for s, m in ((self.symbols[k], v) for k, v in self.markets.items()) if s == symbol)

    def _open_by_client(self, client_id: str) -> StubOrder | None:
        return next((o for o in self.orders.values() if o.client_id == client_id
                     and o.status in ("NEW", "PARTIALLY_FILLED")), None)

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        m = self._market(params)
        side, otype = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            raise _ApiError(400, -1116, "Invalid orderType." if otype not in ("MARKET", "LIMIT")
                            else "Invalid side.")
        client_id = params.get("newClientOrderId") or f"stub{self._next_order}"
        if self._open_by_client(client_id) is not None:
            raise _ApiError(400, -2010, MSG_DUPLICATE)
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params["price"]) if otype == "LIMIT" else Decimal(0)
        except (KeyError, ArithmeticError):
            raise _ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, "
                                        "or malformed.") from None
        last = self.prices[m.market_id]
        if qty < m.min_qty or qty % m.step != 0:
            raise _ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if otype == "LIMIT" and (price <= 0 or price % m.tick != 0):
            raise _ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * (price or last) < m.min_notional:
            raise _ApiError(400, -1013, "Filter failure: NOTIONAL")
        need_asset, need = (m.quote, qty * (price or last)) if side == "BUY" else (m.base, qty)
        if self.free.get(need_asset, Decimal(0)) < need:
            raise _ApiError(400, -2010, MSG_BALANCE)
        now = _now_ms()
        order = StubOrder(self._next_order, client_id, m, side, otype, qty, price,
                          params.get("timeInForce", "GTC") if otype == "LIMIT" else "GTC", now, update_ms=now)
        self._next_order += 1
        self.orders[order.order_id] = order
        self.placements[client_id] += 1
        if otype == "MARKET":
            self._fill_market(order, qty, last, m.step)
        else:
            self.free[need_asset] -= need
            self.locked[need_asset] = self.locked.get(need_asset, Decimal(0)) + need
            order.locked = need
            crosses = last <= price if side == "BUY" else last >= price
            if crosses:
                self._trade(order, qty, price, maker=False)
        return {**self._order_json(order), "transactTime": now, "workingTime": now, "fills": list(order.fills)}

    def _fill_market(self, order: StubOrder, qty: Decimal, last: Decimal, step: Decimal) -> None:
        """A MARKET order filled at ``last`` in ``market_fill_parts`` trades (the last takes the remainder)."""
        parts = max(1, self.market_fill_parts)
        each = (qty / parts).quantize(step, rounding=ROUND_DOWN)
        for i in range(parts):
            part = qty - order.executed if i == parts - 1 else each
            if part > 0:
                self._trade(order, part, last, maker=False)

    def _trade(self, order: StubOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        m, now = order.market, _now_ms()
        quote = qty * price
        if order.side == "BUY":
            fee, fee_asset = (qty * self.fee_rate).quantize(_Q8), m.base
            self._pay(order, m.quote, quote)
            self.free[m.base] = self.free.get(m.base, Decimal(0)) + qty - fee
        else:
            fee, fee_asset = (quote * self.fee_rate).quantize(_Q8), m.quote
            self._pay(order, m.base, qty)
            self.free[m.quote] = self.free.get(m.quote, Decimal(0)) + quote - fee
        order.executed += qty
        order.quote += quote
        order.update_ms = now
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        if order.status == "FILLED" and order.locked:
            self._release(order)
        trade_id = self._next_trade
        self._next_trade += 1
        order.fills.append({"price": _fmt(price), "qty": _fmt(qty), "commission": _fmt(fee),
                            "commissionAsset": fee_asset, "tradeId": trade_id})
        self.trades.append({"symbol": m.market_id, "id": trade_id, "orderId": order.order_id, "orderListId": -1,
                            "price": _fmt(price), "qty": _fmt(qty), "quoteQty": _fmt(quote),
                            "commission": _fmt(fee), "commissionAsset": fee_asset, "time": now,
                            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True})

    def _pay(self, order: StubOrder, asset: str, amount: Decimal) -> None:
        """Take ``amount`` of ``asset`` from the order's locked funds first, then from free."""
        from_locked = min(order.locked, amount)
        order.locked -= from_locked
        self.locked[asset] = self.locked.get(asset, Decimal(0)) - from_locked
        self.free[asset] = self.free.get(asset, Decimal(0)) - (amount - from_locked)

    def _release(self, order: StubOrder) -> None:
        asset = order.market.quote if order.side == "BUY" else order.market.base
        self.locked[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = Decimal(0)

    def _find(self, params: dict[str, str], code: int, msg: str) -> StubOrder:
        m = self._market(params)
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            # Binance answers the latest order with that client id.
            order = next((o for o in sorted(self.orders.values(), key=lambda o: -o.order_id)
                          if o.client_id == params["origClientOrderId"]), None)
        else:
            raise _ApiError(400, -1102,
                            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order is None or order.market is not m:
            raise _ApiError(400, code, msg)
        return order

    def _query_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(params, -2013, "Order does not exist.")
        return {**self._order_json(order), "stopPrice": "0.00000000", "icebergQty": "0.00000000",
                "time": order.time_ms, "updateTime": order.update_ms,
                "isWorking": order.status in ("NEW", "PARTIALLY_FILLED"), "workingTime": order.time_ms}

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(params, -2011, "Unknown order sent.")
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _ApiError(400, -2011, "Unknown order sent.")
        self._release(order)
        order.status, order.update_ms = "CANCELED", _now_ms()
        return {**self._order_json(order), "origClientOrderId": order.client_id,
                "clientOrderId": f"cancel{order.order_id}", "transactTime": order.update_ms}

    def _open_stub_orders(self, params: dict[str, str]) -> list[StubOrder]:
        """Resting orders, oldest first, of ``params['symbol']`` if given (an unknown symbol is refused)."""
        mid = params.get("symbol")
        if mid is not None:
            self._market(params)
        return [o for o in sorted(self.orders.values(), key=lambda o: o.order_id)
                if o.status in ("NEW", "PARTIALLY_FILLED") and (mid is None or o.market.market_id == mid)]

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [{**self._order_json(o), "time": o.time_ms, "updateTime": o.update_ms, "isWorking": True,
                 "stopPrice": "0.00000000", "icebergQty": "0.00000000", "workingTime": o.time_ms}
                for o in self._open_stub_orders(params)]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(params)
        rows = [t for t in self.trades if t["symbol"] == m.market_id]
        if "orderId" in params:
            rows = [t for t in rows if t["orderId"] == int(params["orderId"])]
        if "startTime" in params:
            rows = [t for t in rows if t["time"] >= int(params["startTime"])]
        if "fromId" in params:
            rows = [t for t in rows if t["id"] >= int(params["fromId"])]
        return rows[:int(params.get("limit", "500"))]

    def _order_json(self, o: StubOrder) -> dict[str, Any]:
        return {"symbol": o.market.market_id, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
                "price": _fmt(o.price), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
                "cummulativeQuoteQty": _fmt(o.quote), "status": o.status, "timeInForce": o.tif, "type": o.type,
                "side": o.side, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["BinanceSpotStub", "StubMarket", "StubOrder", "MSG_BALANCE", "MSG_DUPLICATE"]
