"""Start-up reconciliation of the exchange executor with the exchange: its truth is adopted.

The rules are in :mod:`bot.execution.exchange`'s docstring.  :func:`reconcile` takes everything it
compares as arguments (the :class:`~bot.execution.gateway.OrderGateway` it reads through, the run, the
book, the trade log's open orders) and returns a :class:`Reconciliation`: what it found, the book with
the exchange's figures adopted and this run's unlogged open orders; the executor takes both.  It
updates the tracked orders it is given in place (exchange id, ``closed_reason``), as the per-bar
polling does.  The comparisons themselves are pure: :func:`balance_differences` (spot),
:func:`position_differences` (USDT-M) and :func:`adjusted_book`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Any

from bot.errors import ExecutionError
from bot.events import Side
from bot.execution.gateway import OrderGateway
from bot.execution.orders import TrackedOrder, fill_from_trade, run_prefix
from bot.execution.paper import PaperAccount

log = logging.getLogger("bot.execution.exchange")

_ZERO = Decimal(0)

Pending = Mapping[str, tuple[Decimal, Decimal]]   # symbol -> (Δqty, Δcash) of trades not logged yet


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the start-up comparison with the exchange found (every mismatch is also logged)."""

    pending_trades: int
    mismatches: tuple[str, ...]
    orphans: tuple[str, ...]   # client ids of this run's open orders the trade log does not know
    book: PaperAccount = field(repr=False)   # the book with the exchange's balances (positions) adopted
    orphan_orders: Mapping[str, dict[str, Any]] = field(default_factory=dict, repr=False)   # client id -> order


@dataclass(frozen=True, slots=True)
class Differences:
    """The exchange's figures less the book's (plus the trades not logged yet), and a line per mismatch."""

    lines: tuple[str, ...] = ()
    d_cash: Decimal = _ZERO
    d_qty: Mapping[str, Decimal] = field(default_factory=dict)
    entries: Mapping[str, Decimal] = field(default_factory=dict)   # USDT-M: the exchange's entry price


async def reconcile(gateway: OrderGateway, market: str, run_id: str, symbols: Sequence[str], book: PaperAccount,
                    tracked: Iterable[TrackedOrder]) -> Reconciliation:
    """Compare the exchange with the trade log at start and adopt the exchange's truth (module doc).

    ``market`` is ``"spot"`` or ``"usdm"``; ``tracked`` are the trade log's open orders.
    """
    tracked = list(tracked)
    orphans, mismatches = await _unlogged_open_orders(gateway, run_id, symbols, {t.client_id for t in tracked})
    pending, n_pending, lost = await _trades_while_down(gateway, tracked)
    mismatches += lost
    if n_pending:
        log.warning("%d trade(s) of open orders happened while the bot was down; logged as fills at the "
                    "first bar", n_pending)
    quote = gateway.assets(symbols[0])[1]
    if market == "usdm":
        cash, held = await futures_holdings(gateway.exchange, symbols, gateway.call)
        diff = position_differences(book, pending, cash, held, symbols, quote)
    else:
        balance = await gateway.call(gateway.exchange.fetch_balance, what="balances")
        bases = {s: gateway.assets(s)[0] for s in symbols}
        diff = balance_differences(book, pending, balance.get("total") or {}, bases, quote)
    mismatches += diff.lines
    for m in mismatches:
        log.warning("reconciliation: %s", m)
    return Reconciliation(n_pending, tuple(mismatches), tuple(sorted(orphans)),
                          adjusted_book(book, diff, symbols), orphans)


async def _unlogged_open_orders(gateway: OrderGateway, run_id: str, symbols: Sequence[str],
                                logged: set[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """This run's open orders on the exchange that the trade log does not know, and a line for each."""
    mine = run_prefix(run_id)
    orphans: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for symbol in symbols:
        for o in await gateway.call(gateway.exchange.fetch_open_orders, symbol, what=f"{symbol} open orders"):
            cid = str(o.get("clientOrderId") or "")
            if cid in logged:
                continue
            if cid.startswith(mine):
                orphans[cid] = o
                lines.append(f"{symbol}: open order {cid} on the exchange is not in the trade log "
                             "(placed just before a crash?); cancelled unless its bar is re-decided")
            else:
                log.info("%s: open order %s is not this run's; left alone", symbol, cid or o.get("id"))
    return orphans, lines


async def _trades_while_down(gateway: OrderGateway, tracked: Sequence[TrackedOrder],
                             ) -> tuple[dict[str, tuple[Decimal, Decimal]], int, list[str]]:
    """Look each logged open order up: the (Δqty, Δcash) of its trades not logged yet per symbol, their
    count, and a line for each order the exchange does not know (closed in the log at the next bar)."""
    pending: dict[str, tuple[Decimal, Decimal]] = {}
    n_pending = 0
    lines: list[str] = []
    for t in tracked:
        found = await gateway.lookup(t.order.symbol, t.client_id)
        if found is None:
            lines.append(f"{t.order.symbol}: open order {t.client_id} of the trade log is unknown to "
                         "the exchange; it is cancelled in the log at the next bar")
            t.closed_reason = "unknown to the exchange at start"
            continue
        t.adopt(found)
        if found.get("status") in ("canceled", "expired", "rejected"):
            t.closed_reason = f"closed on the exchange while the bot was down (status {found.get('status')})"
            log.warning("order %s: %s", t.client_id, t.closed_reason)
        if Decimal(str(found.get("filled") or "0")) == 0:
            continue
        base, quote = gateway.assets(t.order.symbol)
        for trade in await gateway.trades_of(t.order.symbol, t.exchange_id, t.client_id):
            if str(trade.get("id")) in t.seen_trades:
                continue
            f = fill_from_trade(t.order, trade, base, quote, 0, False)
            dq, dc = pending.get(f.symbol, (_ZERO, _ZERO))
            sign = 1 if f.side is Side.BUY else -1
            pending[f.symbol] = (dq + sign * f.qty, dc - sign * f.qty * f.price - f.fee)
            n_pending += 1
    return pending, n_pending, lines


def balance_differences(book: PaperAccount, pending: Pending, totals: Mapping[str, Any],
                        bases: Mapping[str, str], quote: str) -> Differences:
    """Spot: the ``quote`` balance is the cash, each base balance (``bases``: symbol → asset) the position."""
    lines: list[str] = []
    expected_cash = book.cash + sum((dc for _, dc in pending.values()), _ZERO)
    have_cash = Decimal(str(totals.get(quote) or "0"))
    d_cash = have_cash - expected_cash
    if d_cash:
        lines.append(f"{quote} balance {have_cash} != {expected_cash} in the trade log; the exchange's is adopted")
    d_qty: dict[str, Decimal] = {}
    for symbol, base in bases.items():
        expected = book.position(symbol) + pending.get(symbol, (_ZERO, _ZERO))[0]
        have = Decimal(str(totals.get(base) or "0"))
        if have != expected:
            d_qty[symbol] = have - expected
            lines.append(f"{symbol}: {base} balance {have} != position {expected} in the trade log; "
                         "the exchange's is adopted")
    return Differences(tuple(lines), d_cash, d_qty)


def position_differences(book: PaperAccount, pending: Pending, cash: Decimal,
                         held: Mapping[str, tuple[Decimal, Decimal]], symbols: Sequence[str],
                         quote: str) -> Differences:
    """USDT-M: ``held`` amounts are the positions, ``cash`` (wallet − Σ amount × entry) the cash."""
    lines: list[str] = []
    expected_cash = book.cash + sum((dc for _, dc in pending.values()), _ZERO)
    d_cash = cash - expected_cash
    if d_cash:
        lines.append(f"{quote} wallet balance less the positions' entry value, {cash}, != cash {expected_cash} "
                     "in the trade log; the exchange's is adopted")
    d_qty: dict[str, Decimal] = {}
    entries: dict[str, Decimal] = {}
    for symbol in symbols:
        expected = book.position(symbol) + pending.get(symbol, (_ZERO, _ZERO))[0]
        have, entry = held.get(symbol, (_ZERO, _ZERO))
        if have != expected:
            d_qty[symbol], entries[symbol] = have - expected, entry
            lines.append(f"{symbol}: position {have} (entry {entry}) on the exchange != position {expected} in "
                         "the trade log; the exchange's is adopted")
    return Differences(tuple(lines), d_cash, d_qty, entries)


def adjusted_book(book: PaperAccount, diff: Differences, symbols: Sequence[str]) -> PaperAccount:
    """``book`` shifted by the differences found (trades not logged yet stay to be booked as fills).

    An adjusted position takes the exchange's entry price when one is given (futures), else keeps its
    average, or the last mark when it was flat (spot: a balance has no entry price).  With nothing to
    adjust, ``book`` itself.
    """
    if not diff.d_cash and not diff.d_qty:
        return book
    positions = dict(book.positions())
    for symbol, dq in diff.d_qty.items():
        qty, avg = positions.get(symbol, (_ZERO, _ZERO))
        if qty + dq == 0:
            positions.pop(symbol, None)
        else:
            entry = diff.entries.get(symbol) or (avg if qty else book.marks().get(symbol, _ZERO))
            positions[symbol] = (qty + dq, entry)
    return PaperAccount(book.cash + diff.d_cash, _ZERO, _ZERO, book.fee_step, positions=positions,
                        marks=book.marks(), symbols=symbols)


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


__all__ = ["Differences", "Reconciliation", "adjusted_book", "balance_differences", "futures_holdings",
           "position_differences", "reconcile"]
