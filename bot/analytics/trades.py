"""Round trips rebuilt from fills, and the trade statistics of the closed ones.

A round trip is one position in one symbol from flat to flat: it opens with the fill that takes
the position away from zero and closes with the fill that brings it back (a liquidation included).
A fill that flips the position through zero closes one trip and opens the next; its fee is split
pro rata to the quantity on each side (rounded six digits finer than the fee; the opening side
takes the remainder, so the parts add up exactly).  Entry price is the average cost of the entries —
the paper account's ``avg_price`` (average-cost accounting: a reduction keeps the average) — and exit
price the quantity-weighted mean of the exits.  Funding paid or received while a trip is open belongs to it.

    pnl(trip) = Σ its fills (±qty × price − fee share) + Σ its funding [+ qty × final mark if still open]

Flat to flat, average cost and FIFO give the same PnL; summed over trips (the open one marked) it is
each symbol's PnL in :func:`bot.reporting.run_report.symbol_pnl`, to the last unit.

Closed-trip statistics: win rate = wins / trips (pnl > 0 wins), profit factor = Σ wins / |Σ losses|
(None with no losing trip), expectancy = mean pnl per trip, in the quote asset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

_PRECISION = 60
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TradeFill:
    symbol: str
    bar_ms: int
    side: str                   # 'buy' or 'sell'
    qty: Decimal
    price: Decimal
    fee: Decimal
    reason: str = ""            # 'liquidation' for a margin close-out


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    direction: int              # +1 long, −1 short
    open_ms: int
    close_ms: int | None        # None: still open at the last mark
    qty: Decimal                # the largest absolute size held
    entry_price: Decimal        # average cost of the entries
    exit_price: Decimal | None  # quantity-weighted mean exit price
    fees: Decimal
    funding: Decimal
    pnl: Decimal
    fills: int
    liquidated: bool = False

    @property
    def closed(self) -> bool:
        return self.close_ms is not None


@dataclass(frozen=True, slots=True)
class TradeStats:
    trips: int                  # closed round trips
    wins: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: Decimal | None  # mean pnl per closed trip
    pnl: Decimal                # Σ pnl of closed trips
    avg_win: Decimal | None
    avg_loss: Decimal | None


class _Open:
    """A trip being built."""

    def __init__(self, symbol: str, direction: int, open_ms: int) -> None:
        self.symbol, self.direction, self.open_ms = symbol, direction, open_ms
        self.qty = self.max_qty = self.cost = self.exit_qty = self.exit_value = _ZERO
        self.fees = self.funding = self.flow = _ZERO
        self.entry = _ZERO
        self.fills = 0
        self.liquidated = False

    def trade(self, signed: Decimal, price: Decimal, fee: Decimal, liquidation: bool) -> None:
        self.fills += 1
        self.fees += fee
        self.flow += -signed * price - fee
        if (signed > 0) == (self.direction > 0):
            self.cost += abs(signed) * price
        else:
            self.exit_qty += abs(signed)
            self.exit_value += abs(signed) * price
            # Average cost: a reduction keeps the average, so the remaining cost shrinks pro rata.
            self.cost -= self.cost * abs(signed) / abs(self.qty)
        self.qty += signed
        self.max_qty = max(self.max_qty, abs(self.qty))
        self.liquidated |= liquidation
        if self.qty != 0:
            self.entry = self.cost / abs(self.qty)

    def finish(self, close_ms: int | None, mark: Decimal | None) -> RoundTrip:
        pnl = self.flow + self.funding
        if close_ms is None and mark is not None:
            pnl += self.qty * mark
        return RoundTrip(symbol=self.symbol, direction=self.direction, open_ms=self.open_ms, close_ms=close_ms,
                         qty=self.max_qty, entry_price=self.entry,
                         exit_price=self.exit_value / self.exit_qty if self.exit_qty else None,
                         fees=self.fees, funding=self.funding, pnl=pnl, fills=self.fills, liquidated=self.liquidated)


def round_trips(fills: Iterable[TradeFill], funding: Iterable[tuple[str, int, Decimal]] = (),
                final_marks: Mapping[str, Decimal] | None = None) -> tuple[RoundTrip, ...]:
    """Round trips of every symbol, by opening time.  ``funding`` is ``(symbol, bar_ms, amount)``;
    at a bar, funding is settled before that bar's fills (the engine's order), liquidations last."""
    events: list[tuple[str, int, int, object]] = []
    for f in fills:
        events.append((f.symbol, f.bar_ms, 2 if f.reason == "liquidation" else 1, f))
    for symbol, bar_ms, amount in funding:
        events.append((symbol, bar_ms, 0, amount))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    trips: list[RoundTrip] = []
    current: dict[str, _Open] = {}
    last_closed: dict[str, int] = {}
    with localcontext(prec=_PRECISION):
        for symbol, bar_ms, kind, item in events:
            trip = current.get(symbol)
            if kind == 0:
                assert isinstance(item, Decimal)
                if trip is not None:
                    trip.funding += item
                elif symbol in last_closed:    # settled on a position that closed at this bar's open
                    i = last_closed[symbol]
                    old = trips[i]
                    trips[i] = _with_funding(old, item)
                continue
            assert isinstance(item, TradeFill)
            signed = item.qty if item.side == "buy" else -item.qty
            liquidation = item.reason == "liquidation"
            if trip is None:
                trip = current[symbol] = _Open(symbol, 1 if signed > 0 else -1, bar_ms)
            held = trip.qty
            if held != 0 and (held + signed) * held < 0:        # flips through zero
                closing = -held
                fee_close = _share(item.fee, abs(closing) / item.qty)
                trip.trade(closing, item.price, fee_close, liquidation)
                last_closed[symbol] = len(trips)
                trips.append(trip.finish(bar_ms, None))
                trip = current[symbol] = _Open(symbol, 1 if signed > 0 else -1, bar_ms)
                trip.trade(signed - closing, item.price, item.fee - fee_close, liquidation)
                continue
            trip.trade(signed, item.price, item.fee, liquidation)
            if trip.qty == 0:
                last_closed[symbol] = len(trips)
                trips.append(trip.finish(bar_ms, None))
                del current[symbol]
        marks = final_marks or {}
        for symbol, trip in current.items():
            trips.append(trip.finish(None, marks.get(symbol)))
    return tuple(sorted(trips, key=lambda t: (t.open_ms, t.symbol)))


def _share(fee: Decimal, fraction: Decimal) -> Decimal:
    """``fee × fraction`` rounded to six digits past the fee's own last digit: a short exact decimal, so the
    trips' sums stay exact."""
    exponent = min(int(fee.as_tuple().exponent), 0) - 6
    return (fee * fraction).quantize(Decimal(1).scaleb(exponent))


def _with_funding(trip: RoundTrip, amount: Decimal) -> RoundTrip:
    return RoundTrip(trip.symbol, trip.direction, trip.open_ms, trip.close_ms, trip.qty, trip.entry_price,
                     trip.exit_price, trip.fees, trip.funding + amount, trip.pnl + amount, trip.fills,
                     trip.liquidated)


def trade_stats(trips: Sequence[RoundTrip]) -> TradeStats:
    """Win rate, profit factor and expectancy of the closed trips among ``trips``."""
    closed = [t.pnl for t in trips if t.closed]
    with localcontext(prec=_PRECISION):
        wins = [p for p in closed if p > 0]
        losses = [p for p in closed if p < 0]
        won, lost = sum(wins, _ZERO), sum(losses, _ZERO)
        total = sum(closed, _ZERO)
        return TradeStats(
            trips=len(closed), wins=len(wins),
            win_rate=len(wins) / len(closed) if closed else None,
            profit_factor=float(won / -lost) if losses else None,
            expectancy=total / len(closed) if closed else None,
            pnl=total,
            avg_win=won / len(wins) if wins else None,
            avg_loss=lost / len(losses) if losses else None)


def traded_notional(fills: Iterable[TradeFill]) -> dict[str, Decimal]:
    """Σ qty × price per symbol (turnover = this over the mean equity)."""
    out: dict[str, Decimal] = {}
    with localcontext(prec=_PRECISION):
        for f in fills:
            out[f.symbol] = out.get(f.symbol, _ZERO) + f.qty * f.price
    return out


def bars_with_fill(fills: Iterable[TradeFill]) -> int:
    """Distinct bars at which at least one fill happened (liquidations included)."""
    return len({f.bar_ms for f in fills})
