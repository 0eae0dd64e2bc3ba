"""A local Binance USDT-M futures REST stub on loopback: what ccxt's ``binanceusdm`` calls for the executor.

:class:`BinanceUsdmStub` shares the HTTP server, request signing checks
(``X-MBX-APIKEY``, HMAC-SHA256 ``signature`` over query string + body,
``timestamp`` / ``recvWindow``), scripted faults (:meth:`fail_next`: 429 / 418
with ``Retry-After``, delayed answers) and the order book bookkeeping of
:class:`~binance_stub.BinanceSpotStub`, and serves the ``/fapi``
family instead (https://developers.binance.com/docs/derivatives/usds-margined-futures):

* public: ``GET /fapi/v1/ping``, ``/fapi/v1/time``, ``/fapi/v1/exchangeInfo``
  (``PRICE_FILTER`` tickSize, ``LOT_SIZE`` stepSize, ``MARKET_LOT_SIZE``,
  ``MIN_NOTIONAL`` with futures' ``notional`` key);
* signed: ``GET /fapi/v2|v3/account``, ``/fapi/v2|v3/balance``,
  ``/fapi/v2|v3/positionRisk``, ``/fapi/v1/leverageBracket``,
  ``POST /fapi/v1/leverage``, ``POST/GET/DELETE /fapi/v1/order``,
  ``GET /fapi/v1/openOrders``, ``GET /fapi/v1/userTrades``.

Account model: one margin asset (the markets' quote, USDT), one-way position
mode (``positionSide`` ``BOTH``), cross margin.  Each symbol has a signed
position with an average entry price (weighted on increase, kept on reduce,
the fill price on a flip) and a leverage (default 20, set by ``POST
/fapi/v1/leverage`` within the symbol's bracket, else -4028).  The wallet
balance moves only by realized PnL and commission (``fee_rate`` taker,
``maker_fee_rate`` maker, charged in USDT); a sell from flat opens a short.
An order that increases a position needs initial margin ``notional /
leverage`` from the available balance (wallet + unrealized PnL − positions'
and open orders' initial margin), else -2019 "Margin is insufficient." (an
order that only reduces a position needs none); lowering a symbol's leverage
so far that the available balance would turn negative is -2028.
As on Binance the default answer to a new order is ACK-like (status ``NEW``,
nothing executed yet, even for a MARKET order that fills at once).

Funding and liquidation are not modelled.  Bind it to loopback only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from binance_stub import _Q8, BinanceSpotStub, StubMarket, StubOrder, _ApiError, _fmt, _now_ms

MSG_MARGIN = "Margin is insufficient."
MSG_DUPLICATE_ID = "ClientOrderId is duplicated."
_ZERO = Decimal(0)
_AVERAGE = Context(prec=28, rounding=ROUND_HALF_EVEN)   # the same rounding as the bot's book


class BinanceUsdmStub(BinanceSpotStub):
    """Binance USDT-M futures REST endpoints on ``127.0.0.1`` (see the module docstring)."""

    ORDER_PATH = "/fapi/v1/order"

    def __init__(self, markets: dict[str, StubMarket], prices: dict[str, Decimal], wallet: Decimal, *,
                 api_key: str, api_secret: str, fee_rate: Decimal = Decimal("0.0005"),
                 maker_fee_rate: Decimal = Decimal("0.0002"), max_leverage: Mapping[str, int] | None = None,
                 default_leverage: int = 20, market_fill_parts: int = 1, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(markets, prices, {}, api_key=api_key, api_secret=api_secret, fee_rate=fee_rate,
                         market_fill_parts=market_fill_parts, host=host, port=port)
        quotes = {m.quote for m in markets.values()}
        if len(quotes) != 1:
            raise ValueError(f"one margin asset expected, got {sorted(quotes)}")
        self.asset = quotes.pop()
        self.wallet = Decimal(wallet)
        self.maker_fee_rate = maker_fee_rate
        self.max_leverage = {m.market_id: int((max_leverage or {}).get(s, 125)) for s, m in markets.items()}
        self.leverage = {mid: min(default_leverage, top) for mid, top in self.max_leverage.items()}
        self.leverage_requests: list[tuple[str, int]] = []    # (market id, leverage) of accepted requests
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}   # market id -> (signed amount, entry price)
        self.order_margin: dict[int, Decimal] = {}            # initial margin held by resting orders

    @property
    def rest_url(self) -> str:
        """The USDT-M REST base to give ccxt (``[exchange] rest_url``)."""
        return f"http://{self._host}:{self._port}/fapi/v1"

    # -- test controls ---------------------------------------------------------------------------

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(self._market_of(symbol).market_id, (_ZERO, _ZERO))[0]

    def entry_price(self, symbol: str) -> Decimal:
        return self.positions.get(self._market_of(symbol).market_id, (_ZERO, _ZERO))[1]

    def unrealized(self) -> Decimal:
        return sum((amt * (self.prices[mid] - entry) for mid, (amt, entry) in self.positions.items()), _ZERO)

    def trade_by_hand(self, symbol: str, side: str, qty: Decimal, client_id: str = "") -> dict[str, Any]:
        """A MARKET order placed by someone else on the account (the web UI): margin checks apply."""
        params = {"symbol": self._market_of(symbol).market_id, "side": side.upper(), "type": "MARKET",
                  "quantity": str(qty)}
        if client_id:
            params["newClientOrderId"] = client_id
        return self._new_order(params)

    def leverage_of(self, symbol: str) -> int:
        return self.leverage[self._market_of(symbol).market_id]

    # -- HTTP ------------------------------------------------------------------------------------

    PREFIX = "/fapi/v1"

    def _signed_routes(self) -> dict[tuple[str, str], Callable[[dict[str, str]], Any]]:
        return {("GET", "/fapi/v2/account"): self._account_v2, ("GET", "/fapi/v3/account"): self._account,
                ("GET", "/fapi/v2/balance"): self._balance, ("GET", "/fapi/v3/balance"): self._balance,
                ("GET", "/fapi/v2/positionRisk"): self._position_risk_v2,
                ("GET", "/fapi/v3/positionRisk"): self._position_risk,
                ("GET", "/fapi/v1/leverageBracket"): self._brackets,
                ("POST", "/fapi/v1/leverage"): self._set_leverage,
                ("POST", "/fapi/v1/order"): self._new_order, ("GET", "/fapi/v1/order"): self._query_order,
                ("DELETE", "/fapi/v1/order"): self._cancel_order, ("GET", "/fapi/v1/openOrders"): self._open_orders,
                ("GET", "/fapi/v1/userTrades"): self._my_trades}

    def _exchange_info(self) -> dict[str, Any]:
        symbols = [{
            "symbol": m.market_id, "pair": m.market_id, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": m.base, "quoteAsset": m.quote, "marginAsset": m.quote,
            "pricePrecision": max(0, -m.tick.normalize().as_tuple().exponent),
            "quantityPrecision": max(0, -m.step.normalize().as_tuple().exponent),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _fmt(m.tick), "maxPrice": "4529764",
                 "tickSize": _fmt(m.tick)},
                {"filterType": "LOT_SIZE", "minQty": _fmt(m.min_qty), "maxQty": "1000", "stepSize": _fmt(m.step)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": _fmt(m.min_qty), "maxQty": "120",
                 "stepSize": _fmt(m.step)},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": _fmt(m.min_notional)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        } for m in self.markets.values()]
        return {"timezone": "UTC", "serverTime": _now_ms(), "futuresType": "U_MARGINED", "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
            "exchangeFilters": [], "assets": [{"asset": self.asset, "marginAvailable": True,
                                               "autoAssetExchange": "-10000"}], "symbols": symbols}

    # -- account ---------------------------------------------------------------------------------

    def _initial_margin(self, mid: str) -> Decimal:
        amt, _ = self.positions.get(mid, (_ZERO, _ZERO))
        with localcontext(_AVERAGE):
            return abs(amt) * self.prices[mid] / self.leverage[mid]

    def available(self) -> Decimal:
        """Wallet + unrealized PnL − initial margin of positions and of resting orders."""
        held = sum((self._initial_margin(mid) for mid in self.positions), _ZERO)
        return self.wallet + self.unrealized() - held - sum(self.order_margin.values(), _ZERO)

    def _asset_json(self) -> dict[str, Any]:
        upnl, avail = self.unrealized(), self.available()
        pos_im = sum((self._initial_margin(mid) for mid in self.positions), _ZERO)
        ord_im = sum(self.order_margin.values(), _ZERO)
        return {"asset": self.asset, "walletBalance": _fmt(self.wallet), "unrealizedProfit": _fmt(upnl),
                "marginBalance": _fmt(self.wallet + upnl), "maintMargin": _fmt(pos_im / 50),
                "initialMargin": _fmt(pos_im + ord_im), "positionInitialMargin": _fmt(pos_im),
                "openOrderInitialMargin": _fmt(ord_im), "crossWalletBalance": _fmt(self.wallet),
                "crossUnPnl": _fmt(upnl), "availableBalance": _fmt(avail),
                "maxWithdrawAmount": _fmt(min(avail, self.wallet)), "updateTime": _now_ms()}

    def _position_json(self, mid: str) -> dict[str, Any]:
        amt, entry = self.positions.get(mid, (_ZERO, _ZERO))
        mark = self.prices[mid]
        return {"symbol": mid, "positionSide": "BOTH", "positionAmt": _fmt(amt), "entryPrice": _fmt(entry),
                "breakEvenPrice": _fmt(entry), "markPrice": _fmt(mark),
                "unRealizedProfit": _fmt(amt * (mark - entry) + _ZERO), "liquidationPrice": "0", "isolatedMargin": "0",
                "notional": _fmt(amt * mark + _ZERO), "marginAsset": self.asset, "isolatedWallet": "0",
                "initialMargin": _fmt(self._initial_margin(mid)), "maintMargin": _fmt(self._initial_margin(mid) / 50),
                "positionInitialMargin": _fmt(self._initial_margin(mid)), "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": _now_ms()}

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        a = self._asset_json()
        return {"totalInitialMargin": a["initialMargin"], "totalMaintMargin": a["maintMargin"],
                "totalWalletBalance": a["walletBalance"], "totalUnrealizedProfit": a["unrealizedProfit"],
                "totalMarginBalance": a["marginBalance"], "totalPositionInitialMargin": a["positionInitialMargin"],
                "totalOpenOrderInitialMargin": a["openOrderInitialMargin"],
                "totalCrossWalletBalance": a["crossWalletBalance"], "totalCrossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                "assets": [a],
                "positions": [{k: p[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit",
                                                 "isolatedMargin", "notional", "isolatedWallet", "initialMargin",
                                                 "maintMargin", "updateTime")}
                              for p in (self._position_json(mid) for mid in sorted(self.positions))]}

    def _account_v2(self, params: dict[str, str]) -> dict[str, Any]:
        out = self._account(params)
        out.update(feeTier=0, feeBurn=False, canTrade=True, canDeposit=True, canWithdraw=True, updateTime=0,
                   multiAssetsMargin=False, tradeGroupId=-1)
        out["positions"] = [{**self._position_json(mid), "leverage": str(self.leverage[mid]), "isolated": False,
                             "maxNotional": "250000"} for mid in sorted(self.markets)]
        return out

    def _balance(self, params: dict[str, str]) -> list[dict[str, Any]]:
        a = self._asset_json()
        return [{"accountAlias": "SgsR", "asset": self.asset, "balance": a["walletBalance"],
                 "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                 "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                 "marginAvailable": True, "updateTime": a["updateTime"]}]

    def _position_risk(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """v3: only symbols with a position (or a resting order)."""
        mids = [self._market(params).market_id] if "symbol" in params else sorted(self.markets)
        resting = {o.market.market_id for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")}
        return [self._position_json(mid) for mid in mids if mid in self.positions or mid in resting]

    def _position_risk_v2(self, params: dict[str, str]) -> list[dict[str, Any]]:
        mids = [self._market(params).market_id] if "symbol" in params else sorted(self.markets)
        return [{**self._position_json(mid), "leverage": str(self.leverage[mid]), "marginType": "cross",
                 "isAutoAddMargin": "false", "maxNotionalValue": "250000"} for mid in mids]

    def _bracket_json(self, mid: str) -> dict[str, Any]:
        top = self.max_leverage[mid]
        return {"symbol": mid, "notionalCoef": 1.0, "brackets": [
            {"bracket": 1, "initialLeverage": top, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": 0.004, "cum": 0.0},
            {"bracket": 2, "initialLeverage": max(1, top // 2), "notionalCap": 1000000, "notionalFloor": 50000,
             "maintMarginRatio": 0.01, "cum": 300.0}]}

    def _brackets(self, params: dict[str, str]) -> Any:
        if "symbol" in params:
            return self._bracket_json(self._market(params).market_id)
        return [self._bracket_json(mid) for mid in sorted(self.markets)]

    def _set_leverage(self, params: dict[str, str]) -> dict[str, Any]:
        m = self._market(params)
        try:
            lev = int(params["leverage"])
        except (KeyError, ValueError):
            raise _ApiError(400, -1102, "Mandatory parameter 'leverage' was not sent, was empty/null, "
                                        "or malformed.") from None
        if not 1 <= lev <= self.max_leverage[m.market_id]:
            raise _ApiError(400, -4028, f"Leverage {lev} is not valid")
        old, self.leverage[m.market_id] = self.leverage[m.market_id], lev
        if lev < old and self.available() < 0:     # lowering it raises the position's initial margin
            self.leverage[m.market_id] = old
            raise _ApiError(400, -2028, "Leverage is smaller than permitted: insufficient margin balance")
        self.leverage_requests.append((m.market_id, lev))
        return {"leverage": lev, "maxNotionalValue": "50000", "symbol": m.market_id}

    # -- orders ----------------------------------------------------------------------------------

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        m = self._market(params)
        mid = m.market_id
        side, otype = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1117, "Invalid side.")
        if otype not in ("MARKET", "LIMIT"):
            raise _ApiError(400, -1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"web_{self._next_order}"
        if self._open_by_client(client_id) is not None:
            raise _ApiError(400, -4116, MSG_DUPLICATE_ID)
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params["price"]) if otype == "LIMIT" else _ZERO
        except (KeyError, ArithmeticError):
            raise _ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, "
                                        "or malformed.") from None
        last = self.prices[mid]
        if qty <= 0 or qty < m.min_qty:
            raise _ApiError(400, -4003, "Quantity less than or equal to zero.")
        if qty % m.step != 0:
            raise _ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        if otype == "LIMIT" and (price <= 0 or price % m.tick != 0):
            raise _ApiError(400, -4014, "Price not increased by tick size.")
        if qty * (price or last) < m.min_notional:
            raise _ApiError(400, -4164, f"Order's notional must be no smaller than {m.min_notional.normalize()} "
                                        "(unless you choose reduce only).")
        amt = self.positions.get(mid, (_ZERO, _ZERO))[0]
        signed = qty if side == "BUY" else -qty
        opening = max(_ZERO, abs(amt + signed) - abs(amt)) if otype == "MARKET" else qty
        with localcontext(_AVERAGE):
            need = opening * (price or last) / self.leverage[mid]
        if need > 0 and need > self.available():    # an order that only reduces a position is never refused
            raise _ApiError(400, -2019, MSG_MARGIN)
        now = _now_ms()
        order = StubOrder(self._next_order, client_id, m, side, otype, qty, price,
                          params.get("timeInForce", "GTC"), now, update_ms=now)
        self._next_order += 1
        self.orders[order.order_id] = order
        self.placements[client_id] += 1
        ack = self._order_json(order)          # newOrderRespType ACK: the order as accepted
        if otype == "MARKET":
            self._fill_market(order, qty, last, m.step)
        else:
            self.order_margin[order.order_id] = need
            if last <= price if side == "BUY" else last >= price:
                self._trade(order, qty, price, maker=False)
        return ack

    def _trade(self, order: StubOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        m, now = order.market, _now_ms()
        mid = m.market_id
        notional = qty * price
        fee = (notional * (self.maker_fee_rate if maker else self.fee_rate)).quantize(_Q8)
        signed = qty if order.side == "BUY" else -qty
        amt, entry = self.positions.get(mid, (_ZERO, _ZERO))
        new = amt + signed
        realized = _ZERO
        if amt != 0 and (amt > 0) != (signed > 0):
            realized = min(abs(amt), qty) * (price - entry) * (1 if amt > 0 else -1)
        if new == 0:
            self.positions.pop(mid, None)
        else:
            if amt == 0 or (amt > 0) != (new > 0):
                entry = price
            elif (amt > 0) == (signed > 0):
                with localcontext(_AVERAGE):
                    entry = (abs(amt) * entry + notional) / abs(new)
            self.positions[mid] = (new, entry)
        self.wallet += realized - fee
        order.executed += qty
        order.quote += notional
        order.update_ms = now
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        if order.order_id in self.order_margin:
            if order.status == "FILLED":
                self._release(order)
            else:
                with localcontext(_AVERAGE):
                    self.order_margin[order.order_id] -= qty * order.price / self.leverage[mid]
        trade_id = self._next_trade
        self._next_trade += 1
        self.trades.append({"buyer": order.side == "BUY", "commission": _fmt(fee), "commissionAsset": m.quote,
                            "id": trade_id, "maker": maker, "orderId": order.order_id, "price": _fmt(price),
                            "qty": _fmt(qty), "quoteQty": _fmt(notional), "realizedPnl": _fmt(realized),
                            "side": order.side, "positionSide": "BOTH", "symbol": mid, "time": now})

    def _release(self, order: StubOrder) -> None:
        self.order_margin.pop(order.order_id, None)
        order.locked = _ZERO

    def _query_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._order_json(self._find(params, -2013, "Order does not exist."))

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self._find(params, -2011, "Unknown order sent.")
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _ApiError(400, -2011, "Unknown order sent.")
        self._release(order)
        order.status, order.update_ms = "CANCELED", _now_ms()
        return self._order_json(order)

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [self._order_json(o) for o in self._open_stub_orders(params)]

    def _order_json(self, o: StubOrder) -> dict[str, Any]:
        avg = o.quote / o.executed if o.executed else _ZERO
        return {"orderId": o.order_id, "symbol": o.market.market_id, "status": o.status, "clientOrderId": o.client_id,
                "price": _fmt(o.price), "avgPrice": _fmt(avg), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
                "cumQty": _fmt(o.executed), "cumQuote": _fmt(o.quote), "timeInForce": o.tif, "type": o.type,
                "reduceOnly": False, "closePosition": False, "side": o.side, "positionSide": "BOTH",
                "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.type,
                "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
                "time": o.time_ms, "updateTime": o.update_ms}


__all__ = ["BinanceUsdmStub", "MSG_DUPLICATE_ID", "MSG_MARGIN"]
