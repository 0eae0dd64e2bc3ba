"""Pure rules of exchange orders: client order ids, rounding and limits, trades as fills.

No I/O here; :mod:`bot.execution.exchange` does the talking.

Client order ids
    ``sb<6 hex of sha256(run_id)>-<decision bar in seconds, base 36>-<market id>``,
    e.g. ``sb3f9a1c-s6ahq0-BTCUSDT``: the same (run, bar, symbol) always gives the
    same id, so a retried or re-decided submission finds the order it already
    placed instead of placing a second one.  Binance allows ``^[.A-Z:/a-z0-9_-]{1,36}$``
    (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints);
    a market id that would make it longer is replaced by 8 hex of its hash.  The
    ``sb<run hash>-`` prefix tells this run's orders from any other on the account.

Rounding
    Quantities go through ccxt's ``amount_to_precision`` (truncation to the
    LOT_SIZE step) and limit prices through ``price_to_precision`` (the tick);
    the market's minimum amount and minimum notional (``limits.amount.min``,
    ``limits.cost.min`` from the NOTIONAL / MIN_NOTIONAL filter) are checked on
    the rounded values, and a breach is an :class:`~bot.errors.ExecutionError`
    naming the symbol, the value and the limit — before anything is sent.

Trades as fills
    The trade log counts fees in the quote asset.  Binance charges commission in
    the asset received unless BNB pays it: a buy's fee in the base asset means
    ``qty − fee`` was credited.  Such a trade is logged with qty ``qty − fee`` (a
    sell's with ``qty + fee``) and fee ``fee × price``, which keeps both the
    position and the cash flow ``∓qty × price − fee`` equal to what the exchange
    booked, exactly.  A fee in a third asset (BNB) cannot be valued exactly; it is
    logged as 0 with a warning.

Tracked orders
    :class:`TrackedOrder` is what the executor knows of one of this run's orders on the
    exchange; the per-bar polling and the start-up reconciliation both update it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt

from bot.errors import ExecutionError
from bot.events import OrderFilled, Side, SubmitOrder

log = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_MAX = 36
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"negative value {n}")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def run_prefix(run_id: str) -> str:
    """The client order id prefix of every order of ``run_id``."""
    return "sb" + hashlib.sha256(run_id.encode()).hexdigest()[:6] + "-"


def client_order_id(run_id: str, bar_ms: int, market_id: str) -> str:
    """The exchange client order id of the order decided at ``bar_ms`` for ``market_id`` (see module doc)."""
    if bar_ms < 0 or bar_ms % 1000:
        raise ExecutionError(f"decision bar {bar_ms} is not a whole second in ms")
    head = f"{run_prefix(run_id)}{_base36(bar_ms // 1000)}-"
    tail = market_id if CLIENT_ID_RE.match(market_id) else ""
    if not tail or len(head) + len(tail) > CLIENT_ID_MAX:
        tail = hashlib.sha256(market_id.encode()).hexdigest()[:8]
    cid = head + tail
    assert CLIENT_ID_RE.match(cid), cid
    return cid


def bar_of_client_id(cid: str) -> int | None:
    """The decision bar (ms) encoded in a client order id of :func:`client_order_id`, or None."""
    parts = cid.split("-", 2)
    if len(parts) != 3 or not parts[0].startswith("sb"):
        return None
    try:
        return int(parts[1], 36) * 1000
    except ValueError:
        return None


def _dec(value: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ExecutionError(f"{what}: not a number: {value!r}") from None
    if not d.is_finite():
        raise ExecutionError(f"{what}: not a finite number: {value!r}")
    return d


def _limit(market: dict[str, Any], kind: str) -> Decimal | None:
    value = ((market.get("limits") or {}).get(kind) or {}).get("min")
    return None if value in (None, "") else _dec(value, f"{market.get('symbol')} limits.{kind}.min")


def rounded_order(exchange: Any, symbol: str, qty: Decimal, ref_price: Decimal,
                  limit_price: Decimal | None) -> tuple[Decimal, Decimal | None]:
    """``(qty, limit price)`` rounded to the market's step and tick; ExecutionError on a breached limit.

    ``ref_price`` (the decision bar's close) values a market order for the minimum notional.
    """
    market = exchange.market(symbol)
    step = (market.get("precision") or {}).get("amount")
    try:
        amount = _dec(exchange.amount_to_precision(symbol, str(qty)), f"{symbol} amount")
    except ccxt.InvalidOrder:  # ccxt's way of saying the amount truncates to nothing
        amount = Decimal(0)
    price = None
    if limit_price is not None:
        price = _dec(exchange.price_to_precision(symbol, str(limit_price)), f"{symbol} price")
        if price <= 0:
            raise ExecutionError(f"{symbol}: limit price {limit_price} rounds to {price} at the market's tick")
    if amount <= 0:
        raise ExecutionError(f"{symbol}: quantity {qty} rounds to {amount} at the lot step {step}: "
                             "nothing to send")
    min_amount = _limit(market, "amount")
    if min_amount is not None and amount < min_amount:
        raise ExecutionError(f"{symbol}: quantity {amount} (from {qty}) is below the market's minimum "
                             f"amount {min_amount}")
    min_cost = _limit(market, "cost")
    notional = amount * (price if price is not None else ref_price)
    if min_cost is not None and notional < min_cost:
        raise ExecutionError(f"{symbol}: notional {notional} ({amount} x {price or ref_price}) is below the "
                             f"market's minimum notional {min_cost}")
    return amount, price


def limit_price_for(side: Side, close: Decimal, offset_bps: Decimal) -> Decimal:
    """A passive limit: a buy ``offset_bps`` below ``close``, a sell as far above (unrounded)."""
    rate = offset_bps.scaleb(-4)
    return close * (1 - rate) if side is Side.BUY else close * (1 + rate)


def fill_from_trade(order: SubmitOrder, trade: dict[str, Any], base: str, quote: str, bar_ms: int,
                    final: bool) -> OrderFilled:
    """One exchange trade of ``order`` as the fill logged at ``bar_ms`` (fees in the quote asset)."""
    what = f"trade {trade.get('id')} of {order.order_id}"
    qty = _dec(trade.get("amount"), f"{what} amount")
    price = _dec(trade.get("price"), f"{what} price")
    fee_info = trade.get("fee") or {}
    fee_cost = _dec(fee_info.get("cost") or "0", f"{what} fee")
    currency = fee_info.get("currency")
    if fee_cost == 0 or currency == quote:
        fee = fee_cost
    elif currency == base:
        qty = qty - fee_cost if order.side is Side.BUY else qty + fee_cost
        fee = fee_cost * price
    else:
        log.warning("%s: fee %s %s is in neither %s nor %s; logged as 0", what, fee_cost, currency, base, quote)
        fee = Decimal(0)
    return OrderFilled(order_id=order.order_id, symbol=order.symbol, decision_bar_ms=order.bar_ms,
                       fill_bar_ms=bar_ms, side=order.side, qty=qty, price=price, fee=fee,
                       trade_id=str(trade.get("id")), final=final)


@dataclass(slots=True)
class TrackedOrder:
    """An order of this run on the exchange, as far as the executor knows."""

    order: SubmitOrder
    client_id: str
    exchange_id: str | None = None
    confirmed: bool = False
    seen_trades: set[str] = field(default_factory=set)
    closed_reason: str | None = None   # the exchange closed it unfilled (or it never got there)
    cancel_reason: str | None = None   # the engine asked to cancel it; sent at the next on_bar

    def adopt(self, answer: Mapping[str, Any]) -> None:
        """Take the exchange's id from its answer about this order: it is there, confirmed."""
        self.exchange_id = str(answer.get("id"))
        self.confirmed = True


__all__ = ["CLIENT_ID_RE", "TrackedOrder", "bar_of_client_id", "client_order_id", "fill_from_trade", "limit_price_for",
           "rounded_order", "run_prefix"]
