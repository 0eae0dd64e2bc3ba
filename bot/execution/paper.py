"""Simulated execution with exact accounting.

:class:`PaperAccount` is pure synchronous logic (no I/O, no clock): it holds
cash, signed positions with their average entry price, the last mark of each
symbol and at most one open market order per symbol.  :class:`PaperExecutor` is
the thin async adapter that implements :class:`bot.execution.Executor` over it.

Fill rules (the same arithmetic a backtest and a live paper run use):

* a market order decided at the close of bar ``bar_ms`` fills at the *open* of
  the first candle of its symbol whose ``open_ms`` is strictly later — never at
  a price the bot could not yet have seen;
* the fill price concedes slippage against us: ``open × (1 + s)`` for a buy,
  ``open × (1 − s)`` for a sell, ``s = slippage_bps / 10 000``, exact;
* the fee is ``qty × price × fee_bps / 10 000`` rounded *up* to ``fee_step`` and
  is paid from cash at the fill.

Every money sum and product runs in a decimal context with unbounded precision
that traps ``Inexact``, so cash and equity reconcile to the last unit; only the
informational average entry price involves a division (28 significant digits).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

from bot.config import PaperSettings
from bot.errors import ExecutionError
from bot.events import Candle, EquityMarked, OrderFilled, PositionMarked, Side, SubmitOrder

log = logging.getLogger(__name__)

# Sums and products of Decimals are exact in this context; anything inexact raises.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# The average entry price is a quotient; it is reported, never summed into cash.
_AVERAGE = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)


def _is_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def rounded_qty(qty: Decimal, step: Decimal) -> Decimal:
    """Round ``qty`` toward zero to a whole number of ``step`` (never trade more than asked)."""
    if not _is_decimal(step) or step <= 0:
        raise ExecutionError(f"step must be a finite Decimal > 0, got {step!r}")
    if not _is_decimal(qty):
        raise ExecutionError(f"qty must be a finite Decimal, got {qty!r}")
    units = Fraction(qty) / Fraction(step)
    whole = math.floor(units) if units >= 0 else math.ceil(units)
    with localcontext(_EXACT):
        return Decimal(whole) * step


def fill_price(open_price: Decimal, side: Side, slippage_bps: Decimal) -> Decimal:
    """The price a market order pays at ``open_price``: slippage always against us, exact."""
    with localcontext(_EXACT):
        rate = slippage_bps.scaleb(-4)
        return open_price * (1 + rate) if side is Side.BUY else open_price * (1 - rate)


def fee_for(qty: Decimal, price: Decimal, fee_bps: Decimal, fee_step: Decimal) -> Decimal:
    """The fee of a fill: ``qty × price × fee_bps / 10 000`` rounded up to ``fee_step``."""
    with localcontext(_EXACT):
        exact = (qty * price * fee_bps).scaleb(-4)
        units = math.ceil(Fraction(exact) / Fraction(fee_step))
        return Decimal(units) * fee_step


@dataclass(frozen=True, slots=True)
class PaperSnapshot:
    """Everything a :class:`PaperAccount` needs to resume: what the store persists."""

    cash: Decimal
    positions: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol → (qty, avg_price)
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    open_orders: tuple[SubmitOrder, ...] = ()


class PaperAccount:
    """Cash, signed positions, marks and open market orders of one simulated account."""

    def __init__(
        self,
        cash: Decimal,
        fee_bps: Decimal,
        slippage_bps: Decimal,
        fee_step: Decimal,
        *,
        positions: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        marks: Mapping[str, Decimal] | None = None,
        open_orders: Iterable[SubmitOrder] = (),
        symbols: Iterable[str] | None = None,
    ) -> None:
        _require(_is_decimal(cash), "cash", "a finite Decimal", cash)
        _require(_is_decimal(fee_bps) and fee_bps >= 0, "fee_bps", "a finite Decimal >= 0", fee_bps)
        _require(_is_decimal(slippage_bps) and 0 <= slippage_bps < 10_000, "slippage_bps",
                 "a finite Decimal in [0, 10000)", slippage_bps)
        _require(_is_decimal(fee_step) and fee_step > 0, "fee_step", "a finite Decimal > 0", fee_step)
        self._cash = cash
        self._fee_bps = fee_bps
        self._slippage_bps = slippage_bps
        self._fee_step = fee_step
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._qty: dict[str, Decimal] = {}
        self._avg: dict[str, Decimal] = {}
        self._marks: dict[str, Decimal] = {}
        self._orders: dict[str, SubmitOrder] = {}  # symbol → its one open order
        self._last_equity: EquityMarked | None = None
        for symbol, (qty, avg) in (positions or {}).items():
            self._check_symbol(symbol, "positions")
            _require(_is_decimal(qty), f"positions[{symbol!r}].qty", "a finite Decimal", qty)
            _require(_is_decimal(avg) and avg >= 0, f"positions[{symbol!r}].avg_price",
                     "a finite Decimal >= 0", avg)
            if qty != 0:
                self._qty[symbol], self._avg[symbol] = qty, avg
        for symbol, price in (marks or {}).items():
            self._check_symbol(symbol, "marks")
            _require(_is_decimal(price) and price > 0, f"marks[{symbol!r}]", "a finite Decimal > 0", price)
            self._marks[symbol] = price
        for order in open_orders:
            self.submit(order)

    @classmethod
    def from_settings(cls, settings: PaperSettings, *, snapshot: PaperSnapshot | None = None,
                      symbols: Iterable[str] | None = None) -> PaperAccount:
        """A fresh account with ``initial_cash``, or one resumed from ``snapshot``."""
        if snapshot is None:
            snapshot = PaperSnapshot(cash=settings.initial_cash)
        return cls.restore(snapshot, fee_bps=settings.taker_fee_bps, slippage_bps=settings.slippage_bps,
                           fee_step=settings.fee_step, symbols=symbols)

    @classmethod
    def restore(cls, snapshot: PaperSnapshot, *, fee_bps: Decimal, slippage_bps: Decimal, fee_step: Decimal,
                symbols: Iterable[str] | None = None) -> PaperAccount:
        """An account in the state ``snapshot`` recorded, with these fee and slippage rules."""
        return cls(snapshot.cash, fee_bps, slippage_bps, fee_step, positions=snapshot.positions,
                   marks=snapshot.marks, open_orders=snapshot.open_orders, symbols=symbols)

    def snapshot(self) -> PaperSnapshot:
        """The state to persist; :meth:`restore` of it behaves identically from here on."""
        return PaperSnapshot(
            cash=self._cash,
            positions={s: (self._qty[s], self._avg[s]) for s in sorted(self._qty)},
            marks=dict(sorted(self._marks.items())),
            open_orders=self.open_orders(),
        )

    # -- reading -------------------------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        return self._cash

    @property
    def fee_bps(self) -> Decimal:
        return self._fee_bps

    @property
    def slippage_bps(self) -> Decimal:
        return self._slippage_bps

    @property
    def fee_step(self) -> Decimal:
        return self._fee_step

    @property
    def last_equity(self) -> EquityMarked | None:
        return self._last_equity

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (negative when short, zero when flat)."""
        return self._qty.get(symbol, _ZERO)

    def avg_price(self, symbol: str) -> Decimal:
        """Average entry price of the open position, 0 when flat."""
        return self._avg.get(symbol, _ZERO)

    def positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Nonzero positions: symbol → (qty, avg_price), sorted by symbol."""
        return {s: (self._qty[s], self._avg[s]) for s in sorted(self._qty)}

    def marks(self) -> dict[str, Decimal]:
        return dict(self._marks)

    def open_orders(self) -> tuple[SubmitOrder, ...]:
        """Open orders, sorted by symbol."""
        return tuple(self._orders[s] for s in sorted(self._orders))

    # -- orders --------------------------------------------------------------------------------

    def submit(self, order: SubmitOrder) -> None:
        """Accept a market order; ExecutionError naming the field if it is malformed or its symbol busy."""
        oid = getattr(order, "order_id", None)
        _require(isinstance(order, SubmitOrder), "order", "a SubmitOrder", order)
        _require(isinstance(oid, str) and oid != "", "order_id", "a non-empty string", oid)
        self._check_symbol(order.symbol, "symbol", oid)
        _require(isinstance(order.bar_ms, int) and not isinstance(order.bar_ms, bool), "bar_ms",
                 "an integer (ms)", order.bar_ms, oid)
        _require(isinstance(order.side, Side), "side", "a Side", order.side, oid)
        _require(_is_decimal(order.qty) and order.qty > 0, "qty", "a finite Decimal > 0", order.qty, oid)
        busy = self._orders.get(order.symbol)
        if busy is not None:
            raise ExecutionError(f"order {oid!r}: field 'symbol': {order.symbol} already has open order "
                                 f"{busy.order_id!r}; cancel it first")
        if any(o.order_id == oid for o in self._orders.values()):
            raise ExecutionError(f"order {oid!r}: field 'order_id': already open")
        self._orders[order.symbol] = order

    def cancel_open(self, reason: str, symbol: str | None = None) -> list[tuple[str, str]]:
        """Cancel open orders (of ``symbol`` only, if given); return ``(order_id, reason)`` pairs."""
        chosen = sorted(self._orders) if symbol is None else [s for s in (symbol,) if s in self._orders]
        return [(self._orders.pop(s).order_id, reason) for s in chosen]

    def fill_due(self, candle: Candle) -> OrderFilled | None:
        """Fill the open order of ``candle.symbol`` if it was decided before this candle's bar."""
        order = self._orders.get(candle.symbol)
        if order is None or candle.open_ms <= order.bar_ms:
            return None
        return self.execute(order.order_id, candle)

    def execute(self, order_id: str, candle: Candle) -> OrderFilled:
        """Fill open order ``order_id`` at ``candle``'s open; refuse a candle not strictly after its decision."""
        order = next((o for o in self._orders.values() if o.order_id == order_id), None)
        if order is None:
            raise ExecutionError(f"order {order_id!r} is not open")
        if candle.symbol != order.symbol:
            raise ExecutionError(f"order {order_id!r}: candle symbol {candle.symbol} is not {order.symbol}")
        # A fill at or before the decision bar would trade at a price the bot could not have seen yet.
        if candle.open_ms <= order.bar_ms:
            raise ExecutionError(f"order {order_id!r} decided at bar {order.bar_ms} cannot fill at the open "
                                 f"of bar {candle.open_ms}: fills must come from a later bar")
        _require(_is_decimal(candle.open) and candle.open > 0, "open", "a finite Decimal > 0",
                 candle.open, order_id)
        price = fill_price(candle.open, order.side, self._slippage_bps)
        fee = fee_for(order.qty, price, self._fee_bps, self._fee_step)
        self._apply(order.symbol, order.side, order.qty, price, fee)
        del self._orders[order.symbol]
        return OrderFilled(order_id=order.order_id, symbol=order.symbol, decision_bar_ms=order.bar_ms,
                           fill_bar_ms=candle.open_ms, side=order.side, qty=order.qty, price=price, fee=fee)

    def _apply(self, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        with localcontext(_EXACT):
            signed = qty if side is Side.BUY else -qty
            old = self._qty.get(symbol, _ZERO)
            new = old + signed
            self._cash = self._cash - signed * price - fee
            if new == 0:
                self._qty.pop(symbol, None)
                self._avg.pop(symbol, None)
                return
            if old == 0 or (old > 0) != (new > 0):  # opened, or flipped through zero
                avg = price
            elif (old > 0) == (signed > 0):  # increased: weighted average of entries
                cost = abs(old) * self._avg[symbol] + qty * price
                with localcontext(_AVERAGE):
                    avg = cost / abs(new)
            else:  # reduced: the remaining entries keep their price
                avg = self._avg[symbol]
            self._qty[symbol], self._avg[symbol] = new, avg

    # -- marking -------------------------------------------------------------------------------

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        """Record ``marks`` and return equity = cash + Σ qty × mark, exact; every position needs a mark."""
        for symbol, price in marks.items():
            self._check_symbol(symbol, "marks")
            _require(_is_decimal(price) and price > 0, f"marks[{symbol!r}]", "a finite Decimal > 0", price)
        merged = {**self._marks, **marks}
        unmarked = sorted(s for s in self._qty if s not in merged)
        if unmarked:
            raise ExecutionError(f"cannot mark bar {bar_ms}: no price ever seen for position(s) {unmarked}")
        self._marks = merged
        positions = tuple(PositionMarked(symbol=s, qty=self._qty[s], avg_price=self._avg[s], mark=merged[s])
                          for s in sorted(self._qty))
        with localcontext(_EXACT):
            equity = self._cash + sum((p.qty * p.mark for p in positions), _ZERO)
        self._last_equity = EquityMarked(bar_ms=bar_ms, cash=self._cash, equity=equity, positions=positions)
        return self._last_equity

    def _check_symbol(self, symbol: object, name: str, order_id: str | None = None) -> None:
        _require(isinstance(symbol, str) and symbol != "", name, "a non-empty string", symbol, order_id)
        if self._symbols is not None and symbol not in self._symbols:
            _require(False, name, f"one of {sorted(self._symbols)}", symbol, order_id)


def _require(ok: bool, name: str, allowed: str, value: object, order_id: str | None = None) -> None:
    if not ok:
        where = f"order {order_id!r}: " if order_id is not None else ""
        raise ExecutionError(f"{where}field '{name}' must be {allowed}, got {value!r}")


class PaperExecutor:
    """The :class:`bot.execution.Executor` of simulated fills, over a :class:`PaperAccount`."""

    def __init__(self, account: PaperAccount) -> None:
        self._account = account

    @classmethod
    def from_settings(cls, settings: PaperSettings, *, snapshot: PaperSnapshot | None = None,
                      symbols: Iterable[str] | None = None) -> PaperExecutor:
        return cls(PaperAccount.from_settings(settings, snapshot=snapshot, symbols=symbols))

    @property
    def account(self) -> PaperAccount:
        return self._account

    async def submit(self, order: SubmitOrder) -> None:
        self._account.submit(order)

    async def on_bar(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        fills = []
        for candle in candles:
            fill = self._account.fill_due(candle)
            if fill is not None:
                log.debug("paper fill %s %s %s %s @ %s fee %s", fill.order_id, fill.side.value, fill.qty,
                          fill.symbol, fill.price, fill.fee)
                fills.append(fill)
        return fills

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        return self._account.mark(bar_ms, marks)

    def cancel_open(self, reason: str, symbol: str | None = None) -> list[tuple[str, str]]:
        return self._account.cancel_open(reason, symbol)

    def position(self, symbol: str) -> Decimal:
        return self._account.position(symbol)

    @property
    def cash(self) -> Decimal:
        return self._account.cash

    def open_orders(self) -> tuple[SubmitOrder, ...]:
        return self._account.open_orders()

    @property
    def last_equity(self) -> EquityMarked | None:
        return self._account.last_equity

    def snapshot(self) -> PaperSnapshot:
        return self._account.snapshot()


__all__ = ["PaperAccount", "PaperExecutor", "PaperSnapshot", "fee_for", "fill_price", "rounded_qty"]
