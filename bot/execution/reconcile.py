"""Start-up reconciliation of the exchange executor with the exchange: its truth is adopted.

Split from :mod:`bot.execution.exchange` (its module docstring describes the rules) as a mixin of
:class:`~bot.execution.exchange.ExchangeExecutor`: the comparison reads the executor's tracked orders
and book and uses its request, lookup and adoption helpers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from typing import Any

from bot.errors import ExecutionError
from bot.events import Side
from bot.execution.orders import fill_from_trade, run_prefix
from bot.execution.paper import PaperAccount

log = logging.getLogger("bot.execution.exchange")

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the start-up comparison with the exchange found (every mismatch is also logged)."""

    pending_trades: int
    mismatches: tuple[str, ...]
    orphans: tuple[str, ...]


class ReconcilingMixin:
    """``reconcile`` and its balance/position comparisons, for :class:`~bot.execution.exchange.ExchangeExecutor`."""

    # Provided by ExchangeExecutor.
    exchange: Any
    settings: Any
    run_id: str
    symbols: tuple[str, ...]
    _book: PaperAccount
    _tracked: dict[str, Any]
    _orphans: dict[str, Any]
    _call: Callable[..., Awaitable[Any]]
    _lookup: Callable[..., Awaitable[Any]]
    _adopt: Callable[..., None]
    _trades_of: Callable[..., Awaitable[list[dict[str, Any]]]]
    _assets: Callable[[str], tuple[str, str]]

    async def reconcile(self) -> Reconciliation:
        """Compare the exchange with the trade log at start and adopt the exchange's truth (module doc)."""
        mismatches: list[str] = []
        pending: dict[str, tuple[Decimal, Decimal]] = {}   # symbol -> (Δqty, Δcash) of trades not logged yet
        n_pending = 0
        mine = run_prefix(self.run_id)
        tracked_ids = {t.client_id for t in self._tracked.values()}
        for symbol in self.symbols:
            for o in await self._call(self.exchange.fetch_open_orders, symbol, what=f"{symbol} open orders"):
                cid = str(o.get("clientOrderId") or "")
                if cid in tracked_ids:
                    continue
                if cid.startswith(mine):
                    self._orphans[cid] = o
                    mismatches.append(f"{symbol}: open order {cid} on the exchange is not in the trade log "
                                      "(placed just before a crash?); cancelled unless its bar is re-decided")
                else:
                    log.info("%s: open order %s is not this run's; left alone", symbol, cid or o.get("id"))
        for t in self._tracked.values():
            found = await self._lookup(t)
            if found is None:
                mismatches.append(f"{t.order.symbol}: open order {t.client_id} of the trade log is unknown to "
                                  "the exchange; it is cancelled in the log at the next bar")
                t.closed_reason = "unknown to the exchange at start"
                continue
            self._adopt(t, found)
            if found.get("status") in ("canceled", "expired", "rejected"):
                t.closed_reason = f"closed on the exchange while the bot was down (status {found.get('status')})"
                log.warning("order %s: %s", t.client_id, t.closed_reason)
            if Decimal(str(found.get("filled") or "0")) == 0:
                continue
            for trade in await self._trades_of(t):
                if str(trade.get("id")) in t.seen_trades:
                    continue
                base, quote = self._assets(t.order.symbol)
                f = fill_from_trade(t.order, trade, base, quote, 0, False)
                dq, dc = pending.get(f.symbol, (_ZERO, _ZERO))
                sign = 1 if f.side is Side.BUY else -1
                pending[f.symbol] = (dq + sign * f.qty, dc - sign * f.qty * f.price - f.fee)
                n_pending += 1
        if n_pending:
            log.warning("%d trade(s) of open orders happened while the bot was down; logged as fills at the "
                        "first bar", n_pending)
        mismatches += await self._reconcile_balances(pending)
        for m in mismatches:
            log.warning("reconciliation: %s", m)
        return Reconciliation(n_pending, tuple(mismatches), tuple(sorted(self._orphans)))

    async def _reconcile_balances(self, pending: Mapping[str, tuple[Decimal, Decimal]]) -> list[str]:
        """Spot: the quote balance is the cash, each base balance the position; adopt the exchange's."""
        if self.settings.market == "usdm":
            return await self._reconcile_positions(pending)
        balance = await self._call(self.exchange.fetch_balance, what="balances")
        totals = balance.get("total") or {}
        out: list[str] = []
        quote = self._assets(self.symbols[0])[1]
        expected_cash = self._book.cash + sum((dc for _, dc in pending.values()), _ZERO)
        have_cash = Decimal(str(totals.get(quote) or "0"))
        d_cash = have_cash - expected_cash
        if d_cash:
            out.append(f"{quote} balance {have_cash} != {expected_cash} in the trade log; the exchange's is adopted")
        d_qty: dict[str, Decimal] = {}
        for symbol in self.symbols:
            base = self._assets(symbol)[0]
            expected = self._book.position(symbol) + pending.get(symbol, (_ZERO, _ZERO))[0]
            have = Decimal(str(totals.get(base) or "0"))
            if have != expected:
                d_qty[symbol] = have - expected
                out.append(f"{symbol}: {base} balance {have} != position {expected} in the trade log; "
                           "the exchange's is adopted")
        if d_cash or d_qty:
            self._adjust_book(d_cash, d_qty)
        return out

    async def _reconcile_positions(self, pending: Mapping[str, tuple[Decimal, Decimal]]) -> list[str]:
        """USDT-M: ``positionRisk`` amounts are the positions, wallet − Σ amount × entry the cash (module doc)."""
        cash, held = await futures_holdings(self.exchange, self.symbols, self._call)
        out: list[str] = []
        quote = self._assets(self.symbols[0])[1]
        expected_cash = self._book.cash + sum((dc for _, dc in pending.values()), _ZERO)
        d_cash = cash - expected_cash
        if d_cash:
            out.append(f"{quote} wallet balance less the positions' entry value, {cash}, != cash {expected_cash} "
                       "in the trade log; the exchange's is adopted")
        d_qty: dict[str, Decimal] = {}
        entries: dict[str, Decimal] = {}
        for symbol in self.symbols:
            expected = self._book.position(symbol) + pending.get(symbol, (_ZERO, _ZERO))[0]
            have, entry = held.get(symbol, (_ZERO, _ZERO))
            if have != expected:
                d_qty[symbol], entries[symbol] = have - expected, entry
                out.append(f"{symbol}: position {have} (entry {entry}) on the exchange != position {expected} in "
                           "the trade log; the exchange's is adopted")
        if d_cash or d_qty:
            self._adjust_book(d_cash, d_qty, entries)
        return out

    def _adjust_book(self, d_cash: Decimal, d_qty: Mapping[str, Decimal],
                     entries: Mapping[str, Decimal] | None = None) -> None:
        """Shift the book by the differences found (trades not logged yet stay to be booked as fills).

        An adjusted position takes the exchange's entry price when one is given (futures), else keeps its
        average, or the last mark when it was flat (spot: a balance has no entry price).
        """
        b = self._book
        positions = dict(b.positions())
        for symbol, dq in d_qty.items():
            qty, avg = positions.get(symbol, (_ZERO, _ZERO))
            if qty + dq == 0:
                positions.pop(symbol, None)
            else:
                entry = (entries or {}).get(symbol) or (avg if qty else b.marks().get(symbol, _ZERO))
                positions[symbol] = (qty + dq, entry)
        self._book = PaperAccount(b.cash + d_cash, _ZERO, _ZERO, b.fee_step, positions=positions, marks=b.marks(),
                                  symbols=self.symbols)


async def futures_holdings(exchange: Any, symbols: Sequence[str], call: Callable[..., Awaitable[Any]],
                           ) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]:
    """USDT-M account as the book counts it: ``(cash, {symbol: (signed amount, entry price)})``.

    The book moves cash by −signed notional − fee at every fill (as on spot), while the exchange's
    wallet moves only by realized PnL and fees; the two agree when cash = wallet − Σ amount × entry
    (``fetch_balance``'s ``assets[].walletBalance``, ``fetch_positions``' ``positionAmt``/``entryPrice``).
    ``call(fn, *args, what=...)`` runs each request with the caller's retries.  Hedge mode is refused.
    """
    quote = exchange.market(symbols[0])["quote"]
    balance = await call(exchange.fetch_balance, what="balances")
    assets = (balance.get("info") or {}).get("assets")
    if not isinstance(assets, list):
        raise ExecutionError("USDT-M account answer without 'assets' (walletBalance); cannot reconcile")
    wallet = next((Decimal(str(a.get("walletBalance") or "0")) for a in assets if a.get("asset") == quote), _ZERO)
    by_unified = {exchange.market(s)["symbol"]: s for s in symbols}
    held: dict[str, tuple[Decimal, Decimal]] = {}
    for p in await call(exchange.fetch_positions, list(by_unified), what="positions"):
        symbol = by_unified.get(str(p.get("symbol")))
        info = p.get("info") or {}
        amt = Decimal(str(info.get("positionAmt") or "0"))
        if symbol is None or amt == 0:
            continue
        if info.get("positionSide", "BOTH") != "BOTH":
            raise ExecutionError(f"{symbol}: a {info.get('positionSide')} position in hedge mode; the executor "
                                 "needs one-way position mode")
        held[symbol] = (amt, Decimal(str(info.get("entryPrice") or "0")))
    with localcontext(Context(prec=200)):   # exact for any realistic amount and price
        cash = wallet - sum((q * e for q, e in held.values()), _ZERO)
    return cash, held


__all__ = ["Reconciliation", "ReconcilingMixin", "futures_holdings"]
