"""Simulated execution with exact accounting, isolated margin and liquidation.

:class:`PaperAccount` is pure synchronous logic (no I/O, no clock): it holds
cash, signed positions with their average entry price and isolated margin, the
last mark of each symbol and at most one open market order per symbol.
:class:`PaperExecutor` is the thin async adapter that implements
:class:`bot.execution.Executor` over it.

Fill rules (the same arithmetic a backtest and a live paper run use):

* a market order decided at the close of bar ``bar_ms`` fills at the *open* of
  the first candle of its symbol whose ``open_ms`` is strictly later — never at
  a price the bot could not yet have seen;
* the fill price concedes slippage against us: ``open × (1 + s)`` for a buy,
  ``open × (1 − s)`` for a sell, ``s = slippage_bps / 10 000``, exact;
* the fee is ``qty × price × fee_bps / 10 000`` rounded *up* to ``fee_step`` and
  is paid from cash at the fill.

Margin model (isolated, one margin ``M`` per position; ``q`` signed qty, ``E``
average entry price, ``mm`` the maintenance margin rate):

* ``M`` is an overlay on the spot-style cash accounting: cash still moves by
  −signed notional − fee at every fill, so ``equity = cash + Σ q × mark`` holds
  exactly whatever the leverage; ``M`` only decides when a position is
  liquidated.  Leverage 1 is fully collateralised.
* An order that increases ``|q|`` (open or add) adds ``|Δq| × price / leverage``
  to ``M``; one that reduces it keeps ``M × |new| / |old|``; a flip releases the
  old margin and gives the new side ``|new| × price / leverage``; flat → 0.
  A position whose margin is exactly ``|q| × E`` (leverage 1 throughout) stays
  at exactly ``|q| × E``, so rounding of ``E`` never makes it liquidatable.
* Its margin balance at price ``p`` is ``M + q (p − E)``; it is liquidated when
  that falls to ``mm × |q| × p``:  long ``p_liq = (q E − M) / (q (1 − mm))``
  (none when ``≤ 0``: a long with ``M ≥ q E`` can never be liquidated), short
  ``p_liq = (M + |q| E) / (|q| (1 + mm))``.  ``p_liq`` is a quotient, rounded
  to 28 digits toward the entry (up for a long, down for a short) so that the
  loss at ``p_liq`` never exceeds ``M``.
* :meth:`PaperAccount.check_liquidations` looks at the *adverse extreme* of each
  bar (low for a long, high for a short): if it reaches ``p_liq`` the whole
  position closes at ``p_liq``, or at the bar's open when the open is already
  beyond it (a gap fills at the worse open), with no slippage and a
  liquidation fee ``|q| × price × liquidation_fee_bps / 10 000`` rounded up to
  ``fee_step``.  A liquidation is not a decision: it happens inside the bar, so
  its fill has ``decision_bar_ms == fill_bar_ms == open_ms``, order id
  ``liq:{open_ms}:{symbol}`` and reason ``"liquidation"``.  Open orders of the
  symbol are left alone.
* Perpetual funding (:meth:`PaperAccount.apply_funding`), when
  ``funding_rate_8h ≠ 0``, is settled on bars whose open time is a multiple of
  8 h (00:00, 08:00, 16:00 UTC): each position receives ``−q × mark × rate``
  in cash (a long pays when the rate is positive); ``M`` is unchanged.

The arithmetic of one fill (price, fee, margin, liquidation price) and its decimal
contexts are in :mod:`bot.execution.fills`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from bot.config import PaperSettings
from bot.errors import ExecutionError
from bot.events import Candle, EquityMarked, FundingPaid, OrderFilled, PositionMarked, Side, SubmitOrder
from bot.execution.fills import (
    AVERAGE,
    EXACT,
    FUNDING_INTERVAL_MS,
    MAX_LEVERAGE,
    ONE,
    ZERO,
    fee_for,
    fill_price,
    is_finite_decimal,
    liquidation_price,
    margin_for,
)
from bot.execution.limits import NotionalCap
from risk.qty import rounded_qty

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class PaperSnapshot:
    """Everything a :class:`PaperAccount` needs to resume: what the store persists.

    A position with no entry in ``margins`` resumes fully collateralised: ``M = |qty| × avg_price``.
    """

    cash: Decimal
    positions: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol → (qty, avg_price)
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    open_orders: tuple[SubmitOrder, ...] = ()
    margins: Mapping[str, Decimal] = field(default_factory=dict)  # symbol → isolated margin M


class PaperAccount:
    """Cash, signed positions with isolated margin, marks and open market orders of one simulated account."""

    def __init__(
        self,
        cash: Decimal,
        fee_bps: Decimal,
        slippage_bps: Decimal,
        fee_step: Decimal,
        *,
        maintenance_margin_rate: Decimal = Decimal("0.005"),
        liquidation_fee_bps: Decimal = Decimal("50"),
        funding_rate_8h: Decimal = ZERO,
        positions: Mapping[str, tuple[Decimal, Decimal]] | None = None,
        margins: Mapping[str, Decimal] | None = None,
        marks: Mapping[str, Decimal] | None = None,
        open_orders: Iterable[SubmitOrder] = (),
        symbols: Iterable[str] | None = None,
    ) -> None:
        _require(is_finite_decimal(cash), "cash", "a finite Decimal", cash)
        _require(is_finite_decimal(fee_bps) and fee_bps >= 0, "fee_bps", "a finite Decimal >= 0", fee_bps)
        _require(is_finite_decimal(slippage_bps) and 0 <= slippage_bps < 10_000, "slippage_bps",
                 "a finite Decimal in [0, 10000)", slippage_bps)
        _require(is_finite_decimal(fee_step) and fee_step > 0, "fee_step", "a finite Decimal > 0", fee_step)
        _require(is_finite_decimal(maintenance_margin_rate) and 0 <= maintenance_margin_rate <= Decimal("0.5"),
                 "maintenance_margin_rate", "a finite Decimal in [0, 0.5]", maintenance_margin_rate)
        _require(is_finite_decimal(liquidation_fee_bps) and 0 <= liquidation_fee_bps <= 1000, "liquidation_fee_bps",
                 "a finite Decimal in [0, 1000]", liquidation_fee_bps)
        _require(is_finite_decimal(funding_rate_8h) and abs(funding_rate_8h) <= Decimal("0.01"), "funding_rate_8h",
                 "a finite Decimal in [-0.01, 0.01]", funding_rate_8h)
        self._cash = cash
        self._fee_bps = fee_bps
        self._slippage_bps = slippage_bps
        self._fee_step = fee_step
        self._mm_rate = maintenance_margin_rate
        self._liq_fee_bps = liquidation_fee_bps
        self._funding_rate = funding_rate_8h
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._qty: dict[str, Decimal] = {}
        self._avg: dict[str, Decimal] = {}
        self._margin: dict[str, Decimal] = {}
        self._marks: dict[str, Decimal] = {}
        self._orders: dict[str, SubmitOrder] = {}  # symbol → its one open order
        self._last_equity: EquityMarked | None = None
        self._restore_positions(positions or {}, margins or {})
        for symbol, price in (marks or {}).items():
            self._check_symbol(symbol, "marks")
            _require(is_finite_decimal(price) and price > 0, f"marks[{symbol!r}]", "a finite Decimal > 0", price)
            self._marks[symbol] = price
        for order in open_orders:
            self.submit(order)

    def _restore_positions(self, positions: Mapping[str, tuple[Decimal, Decimal]],
                           margins: Mapping[str, Decimal]) -> None:
        for symbol, (qty, avg) in positions.items():
            self._check_symbol(symbol, "positions")
            _require(is_finite_decimal(qty), f"positions[{symbol!r}].qty", "a finite Decimal", qty)
            _require(is_finite_decimal(avg) and avg >= 0, f"positions[{symbol!r}].avg_price",
                     "a finite Decimal >= 0", avg)
            if qty != 0:
                self._qty[symbol], self._avg[symbol] = qty, avg
                with localcontext(EXACT):
                    self._margin[symbol] = abs(qty) * avg  # fully collateralised unless a margin is given
        for symbol, margin in margins.items():
            _require(symbol in self._qty, f"margins[{symbol!r}]", "the margin of an open position", margin)
            _require(is_finite_decimal(margin) and margin >= 0, f"margins[{symbol!r}]", "a finite Decimal >= 0",
                     margin)
            self._margin[symbol] = margin

    @classmethod
    def from_settings(cls, settings: PaperSettings, *, snapshot: PaperSnapshot | None = None,
                      symbols: Iterable[str] | None = None) -> PaperAccount:
        """A fresh account with ``initial_cash``, or one resumed from ``snapshot``."""
        if snapshot is None:
            snapshot = PaperSnapshot(cash=settings.initial_cash)
        return cls.restore(snapshot, fee_bps=settings.taker_fee_bps, slippage_bps=settings.slippage_bps,
                           fee_step=settings.fee_step, maintenance_margin_rate=settings.maintenance_margin_rate,
                           liquidation_fee_bps=settings.liquidation_fee_bps,
                           funding_rate_8h=settings.funding_rate_8h, symbols=symbols)

    @classmethod
    def restore(cls, snapshot: PaperSnapshot, *, fee_bps: Decimal, slippage_bps: Decimal, fee_step: Decimal,
                maintenance_margin_rate: Decimal = Decimal("0.005"), liquidation_fee_bps: Decimal = Decimal("50"),
                funding_rate_8h: Decimal = ZERO, symbols: Iterable[str] | None = None) -> PaperAccount:
        """An account in the state ``snapshot`` recorded, with these fee, slippage, margin and funding rules."""
        return cls(snapshot.cash, fee_bps, slippage_bps, fee_step, maintenance_margin_rate=maintenance_margin_rate,
                   liquidation_fee_bps=liquidation_fee_bps, funding_rate_8h=funding_rate_8h,
                   positions=snapshot.positions, margins=snapshot.margins, marks=snapshot.marks,
                   open_orders=snapshot.open_orders, symbols=symbols)

    def snapshot(self) -> PaperSnapshot:
        """The state to persist; :meth:`restore` of it behaves identically from here on."""
        return PaperSnapshot(
            cash=self._cash,
            positions=self.positions(),
            marks=dict(sorted(self._marks.items())),
            open_orders=self.open_orders(),
            margins={s: self._margin[s] for s in sorted(self._qty)},
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
    def maintenance_margin_rate(self) -> Decimal:
        return self._mm_rate

    @property
    def liquidation_fee_bps(self) -> Decimal:
        return self._liq_fee_bps

    @property
    def funding_rate_8h(self) -> Decimal:
        return self._funding_rate

    @property
    def last_equity(self) -> EquityMarked | None:
        return self._last_equity

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (negative when short, zero when flat)."""
        return self._qty.get(symbol, ZERO)

    def avg_price(self, symbol: str) -> Decimal:
        """Average entry price of the open position, 0 when flat."""
        return self._avg.get(symbol, ZERO)

    def margin(self, symbol: str) -> Decimal:
        """Isolated margin of the open position, 0 when flat."""
        return self._margin.get(symbol, ZERO)

    def liq_price(self, symbol: str) -> Decimal | None:
        """Price at which the position is liquidated; None when flat or when it cannot be."""
        if symbol not in self._qty:
            return None
        return liquidation_price(self._qty[symbol], self._avg[symbol], self._margin[symbol], self._mm_rate)

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
        _require(order.order_type == "market", "order_type", "'market' (paper orders fill at the next open)",
                 order.order_type, oid)
        _require(is_finite_decimal(order.qty) and order.qty > 0, "qty", "a finite Decimal > 0", order.qty, oid)
        _require(is_finite_decimal(order.leverage) and 1 <= order.leverage <= MAX_LEVERAGE, "leverage",
                 f"a finite Decimal in [1, {MAX_LEVERAGE}]", order.leverage, oid)
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
        _require(is_finite_decimal(candle.open) and candle.open > 0, "open", "a finite Decimal > 0",
                 candle.open, order_id)
        price = fill_price(candle.open, order.side, self._slippage_bps)
        fee = fee_for(order.qty, price, self._fee_bps, self._fee_step)
        self._apply(order.symbol, order.side, order.qty, price, fee, order.leverage)
        del self._orders[order.symbol]
        return OrderFilled(order_id=order.order_id, symbol=order.symbol, decision_bar_ms=order.bar_ms,
                           fill_bar_ms=candle.open_ms, side=order.side, qty=order.qty, price=price, fee=fee)

    def book_fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal,
                  leverage: Decimal = ONE) -> None:
        """Book a fill that happened elsewhere (an exchange trade) with the same exact arithmetic."""
        self._check_symbol(symbol, "symbol")
        _require(isinstance(side, Side), "side", "a Side", side)
        _require(is_finite_decimal(qty) and qty > 0, "qty", "a finite Decimal > 0", qty)
        _require(is_finite_decimal(price) and price > 0 and is_finite_decimal(fee), "price/fee", "finite, price > 0",
                 (price, fee))
        _require(is_finite_decimal(leverage) and 1 <= leverage <= MAX_LEVERAGE, "leverage", "in [1, 125]", leverage)
        self._apply(symbol, side, qty, price, fee, leverage)

    def _apply(self, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal,
               leverage: Decimal) -> None:
        with localcontext(EXACT):
            signed = qty if side is Side.BUY else -qty
            old = self._qty.get(symbol, ZERO)
            new = old + signed
            self._cash = self._cash - signed * price - fee
            if new == 0:
                for book in (self._qty, self._avg, self._margin):
                    book.pop(symbol, None)
                return
            if old == 0 or (old > 0) != (new > 0):  # opened, or flipped through zero: old margin released
                avg = price
                margin = margin_for(abs(new), price, leverage)
            elif (old > 0) == (signed > 0):  # increased: weighted average of entries, margin added
                cost = abs(old) * self._avg[symbol] + qty * price
                with localcontext(AVERAGE):
                    avg = cost / abs(new)
                if leverage == 1 and self._is_full(symbol):
                    margin = abs(new) * avg  # stays exactly fully collateralised
                else:
                    margin = self._margin[symbol] + margin_for(qty, price, leverage)
            else:  # reduced: the remaining entries keep their price and their share of the margin
                avg = self._avg[symbol]
                if self._is_full(symbol):
                    margin = abs(new) * avg
                else:
                    kept = self._margin[symbol] * abs(new)
                    with localcontext(AVERAGE):
                        margin = kept / abs(old)
            self._qty[symbol], self._avg[symbol], self._margin[symbol] = new, avg, margin

    def _is_full(self, symbol: str) -> bool:
        with localcontext(EXACT):
            return self._margin[symbol] == abs(self._qty[symbol]) * self._avg[symbol]

    # -- margin and funding --------------------------------------------------------------------

    def check_liquidations(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        """Close each position whose bar's adverse extreme reached its liquidation price (see module doc)."""
        fills = []
        for candle in candles:
            fill = self._liquidate(candle)
            if fill is not None:
                fills.append(fill)
        return fills

    def _liquidate(self, candle: Candle) -> OrderFilled | None:
        symbol = candle.symbol
        qty = self._qty.get(symbol)
        if qty is None:
            return None
        for name in ("open", "high", "low"):
            value = getattr(candle, name)
            _require(is_finite_decimal(value) and value > 0, name, "a finite Decimal > 0", value)
        liq = self.liq_price(symbol)
        if liq is None:
            return None
        if qty > 0:
            if candle.low > liq:
                return None
            price = min(candle.open, liq)  # a gap through p_liq fills at the worse open
        else:
            if candle.high < liq:
                return None
            price = max(candle.open, liq)
        side = Side.SELL if qty > 0 else Side.BUY
        size = abs(qty)
        fee = fee_for(size, price, self._liq_fee_bps, self._fee_step)
        log.warning("liquidation %s %s %s @ %s (liq price %s) fee %s", symbol, side.value, size, price, liq, fee)
        self._apply(symbol, side, size, price, fee, ONE)
        # A liquidation is not a decision: it happens inside the bar it is seen in.
        return OrderFilled(order_id=f"liq:{candle.open_ms}:{symbol}", symbol=symbol,
                           decision_bar_ms=candle.open_ms, fill_bar_ms=candle.open_ms, side=side, qty=size,
                           price=price, fee=fee, reason="liquidation")

    def apply_funding(self, bar_ms: int, marks: Mapping[str, Decimal]) -> list[FundingPaid]:
        """Settle perpetual funding at an 8-h boundary: each position receives ``−q × mark × rate`` in cash.

        ``marks`` are the bar's open prices; a symbol missing from them falls back to its last mark.
        """
        _require(isinstance(bar_ms, int) and not isinstance(bar_ms, bool), "bar_ms", "an integer (ms)", bar_ms)
        if self._funding_rate == 0 or bar_ms % FUNDING_INTERVAL_MS != 0 or not self._qty:
            return []
        for symbol, price in marks.items():
            self._check_symbol(symbol, "marks")
            _require(is_finite_decimal(price) and price > 0, f"marks[{symbol!r}]", "a finite Decimal > 0", price)
        merged = {**self._marks, **marks}
        unmarked = sorted(s for s in self._qty if s not in merged)
        if unmarked:
            raise ExecutionError(f"cannot settle funding at bar {bar_ms}: no price for position(s) {unmarked}")
        paid = []
        with localcontext(EXACT):
            for symbol in sorted(self._qty):
                qty, mark = self._qty[symbol], merged[symbol]
                amount = -qty * mark * self._funding_rate
                self._cash += amount
                paid.append(FundingPaid(symbol=symbol, bar_ms=bar_ms, qty=qty, mark=mark,
                                        rate=self._funding_rate, amount=amount))
        return paid

    # -- marking -------------------------------------------------------------------------------

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        """Record ``marks`` and return equity = cash + Σ qty × mark, exact; every position needs a mark."""
        for symbol, price in marks.items():
            self._check_symbol(symbol, "marks")
            _require(is_finite_decimal(price) and price > 0, f"marks[{symbol!r}]", "a finite Decimal > 0", price)
        merged = {**self._marks, **marks}
        unmarked = sorted(s for s in self._qty if s not in merged)
        if unmarked:
            raise ExecutionError(f"cannot mark bar {bar_ms}: no price ever seen for position(s) {unmarked}")
        self._marks = merged
        positions = tuple(PositionMarked(symbol=s, qty=self._qty[s], avg_price=self._avg[s], mark=merged[s],
                                         margin=self._margin[s], liq_price=self.liq_price(s))
                          for s in sorted(self._qty))
        with localcontext(EXACT):
            equity = self._cash + sum((p.qty * p.mark for p in positions), ZERO)
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
    """The :class:`bot.execution.Executor` of simulated fills, over a :class:`PaperAccount`.

    With a :class:`~bot.execution.limits.NotionalCap` (the daemon and the backtest always give one), an
    order far beyond equity × the leverage cap is refused with the reason, never filled.
    """

    def __init__(self, account: PaperAccount, cap: NotionalCap | None = None) -> None:
        self._account = account
        self._cap = cap

    @classmethod
    def from_settings(cls, settings: PaperSettings, *, snapshot: PaperSnapshot | None = None,
                      symbols: Iterable[str] | None = None) -> PaperExecutor:
        return cls(PaperAccount.from_settings(settings, snapshot=snapshot, symbols=symbols))

    @property
    def account(self) -> PaperAccount:
        return self._account

    async def submit(self, order: SubmitOrder) -> SubmitOrder:
        if self._cap is not None:
            why = self._cap.refusal(order, self._account.marks().get(order.symbol),
                                    self._account.position(order.symbol))
            if why is not None:
                raise ExecutionError(f"order {order.order_id!r}: {why}")
        self._account.submit(order)
        return order

    def expiry_reason(self, order: SubmitOrder, bar_ms: int, timeframe_ms: int) -> str | None:
        """A paper order fills at its symbol's next bar; if that bar never came, it is stale."""
        if order.bar_ms < bar_ms - timeframe_ms:
            return f"stale: no bar of {order.symbol} followed decision bar {order.bar_ms}"
        return None

    async def on_bar(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        fills = []
        for candle in candles:
            fill = self._account.fill_due(candle)
            if fill is not None:
                log.debug("paper fill %s %s %s %s @ %s fee %s", fill.order_id, fill.side.value, fill.qty,
                          fill.symbol, fill.price, fill.fee)
                fills.append(fill)
        return fills

    async def liquidate(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        return self._account.check_liquidations(candles)

    def apply_funding(self, bar_ms: int, marks: Mapping[str, Decimal]) -> list[FundingPaid]:
        return self._account.apply_funding(bar_ms, marks)

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        marked = self._account.mark(bar_ms, marks)
        if self._cap is not None:
            self._cap.observe(marked.equity)
        return marked

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


__all__ = ["FUNDING_INTERVAL_MS", "MAX_LEVERAGE", "PaperAccount", "PaperExecutor", "PaperSnapshot", "fee_for",
           "fill_price", "liquidation_price", "rounded_qty"]
