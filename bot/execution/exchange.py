"""Real orders through ccxt's async API: the :class:`~bot.execution.Executor` of live trading.

:class:`ExchangeExecutor` implements the same protocol as the paper executor,
so the engine has no ``if paper`` branch.  The exchange is the truth; the
executor keeps a *book* (a :class:`~bot.execution.paper.PaperAccount` fed only
with the exchange's own trades) so the engine marks cash and positions exactly
as it does on paper, and the trade log reconciles the same way.

Lifecycle of an order (see :mod:`bot.execution.orders` for ids and rounding)::

    submit      round and check limits (no request if they fail) → look the client
                order id up → place it only if the exchange has none → tracked
    on_bar      cancels asked for since the last bar are sent; every tracked order
                decided before the bar is polled (fetch_order by client id, then
                its trades); each exchange trade not logged yet becomes one
                OrderFilled (``final`` on the one that completes the order)
    expiry      an order open ``limit_ttl_bars`` bars after its decision, one the
                exchange closed by itself, or one that never reached it, is
                reported by ``expiry_reason`` and cancelled through the engine, so
                the cancellation is logged with its bar
    shutdown    open orders are cancelled on the exchange (``cancel_on_shutdown``);
                trades and cancellations the bot has not logged are picked up by
                the reconciliation of the next start

Retries: reads go through the :class:`~bot.execution.gateway.OrderGateway` the executor holds
(:func:`~bot.feeds.retry.call_with_retry`: backoff, ``Retry-After`` honoured for 429 and 418).
A placement is never simply repeated: every attempt first looks the client order id up (``origClientOrderId``)
and adopts what it finds, and a "Duplicate order sent." answer means the order
is there (USDT-M: -4116 "ClientOrderId is duplicated.").  An attempt that may have reached the exchange
(timeout, network error) and could not be confirmed leaves the order tracked as unconfirmed; the
next bar's lookup settles it.  Refusals (InsufficientFunds -2010 / USDT-M -2019, InvalidOrder /
filter failure -1013, any other exchange error) raise ExecutionError; the engine
logs the order as cancelled with the reason and the executor counts them for the
``rejections`` table (source ``exchange``).

Reconciliation at start (:meth:`ExchangeExecutor.reconcile`, which runs :func:`bot.execution.reconcile.reconcile`
with the executor's gateway, book and tracked orders, and takes the book and orphans it returns): the trade log's
open orders are looked up on the exchange and the trades they made while the
bot was down are counted (they are logged as fills at the first bar); this
run's open orders that the log does not know are listed and cancelled unless a
re-decided submission adopts them; the quote and base balances are compared with
the book plus those trades.  Each mismatch is logged and the book adopts the
exchange's figure.

USDT-M futures (``settings.market == "usdm"``): the leverage of a symbol is set
before its first order (and when it changes), clamped to its bracket; a sell
from flat opens a short; the reconciliation compares ``positionRisk`` amounts
with the positions and wallet − Σ amount × entry price with the cash
(:func:`~bot.execution.reconcile.futures_holdings`), and an adjusted position takes the exchange's entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Any

import ccxt

from bot.config import ExchangeSettings
from bot.errors import ExecutionError
from bot.events import Candle, EquityMarked, FundingPaid, OrderFilled, Side, SubmitOrder
from bot.execution.gateway import OrderGateway
from bot.execution.limits import NotionalCap
from bot.execution.orders import (
    TrackedOrder,
    bar_of_client_id,
    client_order_id,
    fill_from_trade,
    limit_price_for,
    rounded_order,
)
from bot.execution.paper import PaperAccount
from bot.execution.reconcile import Reconciliation, reconcile
from bot.feeds.retry import RetryPolicy, is_retryable, retry_after_s

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
_OPEN = "open"
_DUPLICATES = ("Duplicate order sent", "ClientOrderId is duplicated")   # spot -2010, USDT-M -4116


class ExchangeExecutor:
    """The :class:`bot.execution.Executor` of real orders (see the module docstring)."""

    def __init__(self, exchange: Any, settings: ExchangeSettings, run_id: str, symbols: Sequence[str],
                 book: PaperAccount, *, open_orders: Sequence[SubmitOrder] = (),
                 logged_trades: Mapping[str, set[str]] | None = None, policy: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, cap: NotionalCap | None = None) -> None:
        self.exchange = exchange
        self._cap = cap   # an order far beyond equity x the leverage cap is refused, never sent
        self.settings = settings
        self.run_id = run_id
        self.symbols = tuple(symbols)
        self.policy = policy
        self._sleep = sleep
        self._gateway = OrderGateway(exchange, policy, sleep)
        self._book = book
        self._tracked: dict[str, TrackedOrder] = {}
        self._orphans: dict[str, dict[str, Any]] = {}
        self._leverage: dict[str, int] = {}
        self._max_leverage: dict[str, int | None] = {}
        self.rejections: Counter[str] = Counter()
        self.rejection_examples: dict[str, str] = {}
        logged = logged_trades or {}
        for order in open_orders:
            self._tracked[order.order_id] = TrackedOrder(
                order, self._client_id(order), seen_trades=set(logged.get(order.order_id, ())))

    # -- ids and markets -------------------------------------------------------------------------

    def _client_id(self, order: SubmitOrder) -> str:
        return client_order_id(self.run_id, order.bar_ms, self.exchange.market(order.symbol)["id"])

    def taker_fee_rate(self, symbol: str) -> Decimal | None:
        """The exchange's taker fee for ``symbol`` as a fraction of notional (ccxt's ``market["taker"]``, from
        the markets loaded at start), or None when it does not say: the net-edge decision's cost."""
        try:
            taker = self.exchange.market(symbol).get("taker")
        except Exception:   # noqa: BLE001 - ccxt raises several kinds for an unknown or unloaded market
            return None
        return None if taker is None else Decimal(str(taker))

    async def reconcile(self) -> Reconciliation:
        """Compare the exchange with the trade log at start and adopt the exchange's truth (module doc)."""
        found = await reconcile(self._gateway, self.settings.market, self.run_id, self.symbols, self._book,
                                self._tracked.values())
        self._book = found.book
        self._orphans.update(found.orphan_orders)
        return found

    # -- submit ----------------------------------------------------------------------------------

    async def submit(self, order: SubmitOrder) -> SubmitOrder:
        if order.order_id in self._tracked:
            raise ExecutionError(f"order {order.order_id!r} was already submitted")
        if order.symbol not in self.symbols:
            raise ExecutionError(f"order {order.order_id!r}: symbol {order.symbol} is not traded by this run")
        close = self._book.marks().get(order.symbol)
        if close is None:
            raise ExecutionError(f"order {order.order_id!r}: no close of {order.symbol} seen yet to price it")
        why = self._cap.refusal(order, close, self._book.position(order.symbol)) if self._cap else None
        if why is not None:
            self._count("limits: notional beyond equity x leverage cap", f"{order.order_id}: {why}")
            raise ExecutionError(f"order {order.order_id!r}: {why}")
        s = self.settings
        wanted = limit_price_for(order.side, close, s.limit_offset_bps) if s.order_type == "limit" else None
        try:
            qty, price = rounded_order(self.exchange, order.symbol, order.qty, close, wanted)
        except ExecutionError as exc:
            self._count("limits: " + str(exc).split(":", 2)[1].strip()[:60], str(exc))
            raise
        placed = SubmitOrder(order.order_id, order.symbol, order.bar_ms, order.side, qty, order.leverage,
                             s.order_type, price)
        tracked = TrackedOrder(placed, self._client_id(placed))
        try:
            await self._set_leverage(placed)
        except Exception as exc:
            self._refused(placed, exc)
        await self._place(tracked)
        self._tracked[placed.order_id] = tracked
        self._orphans.pop(tracked.client_id, None)
        return placed

    async def _set_leverage(self, order: SubmitOrder) -> None:
        """USDT-M futures: the symbol's leverage, set through ccxt before its first order and at each change.

        Not for an order that only reduces the position (Binance takes no margin for it, and lowering the
        leverage of an open position can be refused, -2028).

        The order's leverage rounded up to an integer (Binance takes whole numbers; rounding down could
        ask more margin than the engine sized for), clamped to the symbol's highest bracket leverage.
        """
        if self.settings.market != "usdm":
            return
        held = self._book.position(order.symbol)
        if held and (held > 0) != (order.side is Side.BUY) and order.qty <= abs(held):
            return   # only reduces the position: no margin taken, the symbol's leverage is left as it is
        wanted = max(1, int(order.leverage.to_integral_value(rounding=ROUND_CEILING)))
        top = await self._leverage_cap(order.symbol)
        lev = wanted if top is None else min(wanted, top)
        if lev != wanted:
            log.warning("%s: leverage %s clamped to the exchange's maximum %d", order.symbol, order.leverage, lev)
        if self._leverage.get(order.symbol) != lev:
            await self._gateway.call(self.exchange.set_leverage, lev, order.symbol,
                                     what=f"{order.symbol} leverage {lev}")
            log.info("%s: leverage set to %d on the exchange", order.symbol, lev)
            self._leverage[order.symbol] = lev

    async def _leverage_cap(self, symbol: str) -> int | None:
        """The symbol's highest allowed leverage (first bracket of ``leverageBracket``), None if unknown."""
        if symbol not in self._max_leverage:
            try:
                tiers = await self._gateway.call(self.exchange.fetch_leverage_tiers, [symbol],
                                                 what=f"{symbol} brackets")
                rows = tiers.get(self.exchange.market(symbol)["symbol"]) or []
                caps = [int(Decimal(str(t["maxLeverage"]))) for t in rows if t.get("maxLeverage") is not None]
                self._max_leverage[symbol] = max(caps) if caps else None
            except Exception as exc:
                log.warning("%s: leverage brackets unknown (%s: %s); leverage not clamped", symbol,
                            type(exc).__name__, exc)
                return None
        return self._max_leverage[symbol]

    async def _place(self, tracked: TrackedOrder) -> None:
        """Place ``tracked`` at most once (see the module docstring); ExecutionError if it is refused."""
        o, cid = tracked.order, tracked.client_id
        params: dict[str, Any] = {"newClientOrderId": cid}
        if o.order_type == "limit":
            params["timeInForce"] = self.settings.time_in_force
        uncertain = False
        last: BaseException | None = None
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                found = await self._gateway.lookup(tracked.order.symbol, tracked.client_id)
            except Exception as exc:  # the lookup itself failed after its retries: nothing is known
                log.warning("order %s: lookup failed: %s: %s", cid, type(exc).__name__, exc)
                break
            if found is not None:
                if attempt > 1 or uncertain:
                    log.warning("order %s: already on the exchange (id %s); not placed again", cid, found["id"])
                else:
                    log.info("order %s: already on the exchange (id %s), adopted", cid, found["id"])
                tracked.adopt(found)
                return
            self.exchange.last_response_headers = None
            try:
                answer = await self.exchange.create_order(o.symbol, o.order_type, o.side.value, str(o.qty),
                                                          None if o.limit_price is None else str(o.limit_price),
                                                          params)
            except Exception as exc:
                last = exc
                if any(d in str(exc) for d in _DUPLICATES):
                    log.warning("order %s: the exchange has it already (duplicate id); looking it up", cid)
                    continue
                if not is_retryable(exc):
                    self._refused(o, exc)
                wait = retry_after_s(self.exchange.last_response_headers)
                throttled = isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))
                uncertain = uncertain or not throttled  # a 429/418 was refused unseen; a timeout may have landed
                if wait is not None and wait > self.policy.max_retry_after_s:
                    log.error("order %s: the exchange asks to wait %g s (Retry-After), over the %g s limit",
                              cid, wait, self.policy.max_retry_after_s)
                    break
                delay = max(self.policy.backoff_s(attempt), wait or 0.0)
                log.warning("order %s: attempt %d/%d failed: %s: %s; looking it up, then retrying in %.2f s",
                            cid, attempt, self.policy.max_attempts, type(exc).__name__, str(exc)[:200], delay)
                await self._sleep(delay)
                continue
            tracked.adopt(answer)
            log.info("order %s placed: %s %s %s %s%s (id %s)", cid, o.order_type, o.side.value, o.qty, o.symbol,
                     f" @ {o.limit_price}" if o.limit_price is not None else "", answer.get("id"))
            return
        if uncertain:
            log.error("order %s: not confirmed after %s; tracked as unconfirmed, looked up at the next bar", cid,
                      f"{type(last).__name__}: {last}" if last else "a failed lookup")
            return
        self._refused(o, last or ExecutionError("no attempt was made"))

    def _refused(self, order: SubmitOrder, exc: BaseException) -> None:
        name = type(exc).__name__
        self._count(name, f"{order.order_id}: {exc}")
        raise ExecutionError(f"{order.symbol} {order.side.value} {order.qty}: the exchange refused it: "
                             f"{name}: {str(exc)[:300]}") from exc

    def _count(self, reason: str, example: str) -> None:
        self.rejections[reason] += 1
        self.rejection_examples[reason] = example

    # -- per bar ---------------------------------------------------------------------------------

    def expiry_reason(self, order: SubmitOrder, bar_ms: int, timeframe_ms: int) -> str | None:
        tracked = self._tracked.get(order.order_id)
        if tracked is not None and tracked.closed_reason is not None:
            return tracked.closed_reason
        ttl = self.settings.limit_ttl_bars
        if order.bar_ms < bar_ms - ttl * timeframe_ms:   # ttl = 1: polled once at the next bar, as paper fills
            return f"expired: not filled within {ttl} bar(s) of decision bar {order.bar_ms}"
        return None

    def cancel_open(self, reason: str, symbol: str | None = None) -> list[tuple[str, str]]:
        """Mark open orders (of ``symbol``) for cancelling; the exchange is told at the next ``on_bar``."""
        out = []
        for t in sorted(self._tracked.values(), key=lambda t: t.order.order_id):
            if t.cancel_reason is None and (symbol is None or t.order.symbol == symbol):
                t.cancel_reason = reason
                out.append((t.order.order_id, reason))
        return out

    async def on_bar(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        if not candles:
            return []
        bar_ms = max(c.open_ms for c in candles)
        fills: list[OrderFilled] = []
        for t in sorted(self._tracked.values(), key=lambda t: (t.order.bar_ms, t.order.order_id)):
            if t.order.bar_ms >= bar_ms:
                continue
            if t.cancel_reason is not None and t.closed_reason is None:
                await self._cancel(t)
            fills += await self._poll(t, bar_ms)
            if t.cancel_reason is not None or (fills and fills[-1].order_id == t.order.order_id and fills[-1].final):
                del self._tracked[t.order.order_id]
        await self._cancel_orphans(bar_ms)
        return fills

    async def _cancel(self, t: TrackedOrder) -> None:
        async def cancel() -> bool:
            try:
                await self.exchange.cancel_order(None, t.order.symbol, {"origClientOrderId": t.client_id})
                return True
            except ccxt.OrderNotFound:   # -2011: already filled, cancelled or never placed
                return False
        try:
            if await self._gateway.call(cancel, what=f"cancel {t.client_id}"):
                log.info("order %s cancelled on the exchange: %s", t.client_id, t.cancel_reason)
            else:
                log.info("order %s: nothing to cancel (already closed or never placed)", t.client_id)
        except Exception as exc:
            log.error("order %s: cancel failed: %s: %s", t.client_id, type(exc).__name__, exc)

    async def _poll(self, t: TrackedOrder, bar_ms: int) -> list[OrderFilled]:
        """New trades of ``t`` as fills logged at ``bar_ms``; notes it if the exchange closed it."""
        for attempt in range(self.settings.poll_attempts):
            try:
                found = await self._gateway.lookup(t.order.symbol, t.client_id)
            except Exception as exc:
                log.error("order %s: status unknown (%s: %s); polled again at the next bar", t.client_id,
                          type(exc).__name__, exc)
                return []
            if found is None:
                if not t.confirmed:
                    t.closed_reason = "never reached the exchange (no order with its client id)"
                else:
                    log.error("order %s: the exchange no longer knows it", t.client_id)
                    t.closed_reason = "unknown to the exchange"
                return []
            t.adopt(found)
            status = found.get("status")
            if status != _OPEN or t.order.order_type == "limit" or attempt + 1 == self.settings.poll_attempts:
                break
            await self._sleep(self.settings.poll_interval_s)  # a market order normally fills at once
        fills = await self._new_fills(t, found, bar_ms)
        if status in ("canceled", "expired", "rejected") and t.cancel_reason is None:
            t.closed_reason = f"closed on the exchange (status {status}) with {found.get('filled')} filled"
            log.warning("order %s: %s", t.client_id, t.closed_reason)
        return fills

    async def _new_fills(self, t: TrackedOrder, found: Mapping[str, Any], bar_ms: int) -> list[OrderFilled]:
        if Decimal(str(found.get("filled") or "0")) == 0:
            return []
        trades = await self._gateway.trades_of(t.order.symbol, t.exchange_id, t.client_id)
        new = [tr for tr in trades if str(tr.get("id")) not in t.seen_trades]
        complete = found.get("status") == "closed"
        base, quote = self._gateway.assets(t.order.symbol)
        fills = []
        for i, trade in enumerate(new):
            # An order the engine is cancelling at this bar stays "open" until that cancel is written.
            last = complete and i == len(new) - 1 and t.cancel_reason is None
            fill = fill_from_trade(t.order, trade, base, quote, bar_ms, final=last)
            self._book.book_fill(fill.symbol, fill.side, fill.qty, fill.price, fill.fee, t.order.leverage)
            t.seen_trades.add(fill.trade_id)
            fills.append(fill)
            log.info("fill %s trade %s: %s %s %s @ %s fee %s", t.client_id, fill.trade_id, fill.side.value,
                     fill.qty, fill.symbol, fill.price, fill.fee)
        return fills

    async def _cancel_orphans(self, bar_ms: int) -> None:
        """Cancel this run's unlogged open orders that no re-decided submission adopted by now."""
        for cid, found in list(self._orphans.items()):
            decided = bar_of_client_id(cid)
            if decided is not None and decided >= bar_ms:
                continue
            del self._orphans[cid]
            try:
                await self._gateway.call(self.exchange.cancel_order, None, found["symbol"], {"origClientOrderId": cid},
                                 what=f"cancel orphan {cid}")
                log.warning("orphan order %s (not in the trade log, not re-decided) cancelled", cid)
            except Exception as exc:
                log.error("orphan order %s: cancel failed: %s: %s", cid, type(exc).__name__, exc)

    async def liquidate(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        return []  # the exchange liquidates; the next start's reconciliation adopts what it did

    def apply_funding(self, bar_ms: int, marks: Mapping[str, Decimal]) -> list[FundingPaid]:
        return []  # spot has none; USDT-M funding is settled by the exchange and not logged (README)

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        marked = self._book.mark(bar_ms, marks)
        if self._cap is not None:
            self._cap.observe(marked.equity)
        return marked

    def position(self, symbol: str) -> Decimal:
        return self._book.position(symbol)

    @property
    def cash(self) -> Decimal:
        return self._book.cash

    def open_orders(self) -> tuple[SubmitOrder, ...]:
        return tuple(t.order for t in sorted(self._tracked.values(), key=lambda t: (t.order.symbol, t.order.bar_ms))
                     if t.cancel_reason is None)

    @property
    def last_equity(self) -> EquityMarked | None:
        return self._book.last_equity

    @property
    def book(self) -> PaperAccount:
        return self._book

    # -- start and stop --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel open orders if configured, then close ccxt's HTTP session."""
        try:
            await self.shutdown()
        finally:
            await self.exchange.close()

    async def shutdown(self) -> list[str]:
        """Cancel this run's open orders on the exchange if ``cancel_on_shutdown``; return their client ids."""
        if not self.settings.cancel_on_shutdown:
            if self._tracked:
                log.info("leaving %d open order(s) on the exchange (cancel_on_shutdown = false)", len(self._tracked))
            return []
        done = []
        for t in list(self._tracked.values()):
            t.cancel_reason = t.cancel_reason or "shutdown"
            await self._cancel(t)
            done.append(t.client_id)
        return done


__all__ = ["ExchangeExecutor", "TrackedOrder"]
