"""The executors' last line of defence: no order far beyond equity × the leverage cap, whatever risk decided.

Risk sizing keeps Σ|exposure| ≤ ``max_gross_leverage`` × equity, so a sound order's
notional stays within a few times equity (a full flip of the book: twice the cap).
An order far beyond that means something upstream went wrong — an absurd price
that got through, an equity marked at such a price — and both executors (paper
and exchange) refuse it with the reason before it is filled or sent; the engine
logs the refusal as a cancelled order.

The equity it is measured against is the lesser of the last two marks, so one
absurd mark cannot inflate the limit it is checked against.  An order that only
reduces a position is never refused here: it takes no new risk.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from bot.config import Settings
from bot.events import Side, SubmitOrder


class NotionalCap:
    """Refuses an order whose notional exceeds ``multiple`` × ``max_gross_leverage`` × equity."""

    def __init__(self, max_gross_leverage: Decimal, multiple: Decimal) -> None:
        if not (max_gross_leverage > 0 and multiple >= 1):
            raise ValueError(f"NotionalCap needs max_gross_leverage > 0 and multiple >= 1, got "
                             f"{max_gross_leverage} and {multiple}")
        self.max_gross_leverage = max_gross_leverage
        self.multiple = multiple
        self._equity: deque[Decimal] = deque(maxlen=2)

    @classmethod
    def from_settings(cls, settings: Settings) -> NotionalCap:
        return cls(Decimal(str(settings.risk.sizing.max_gross_leverage)),
                   settings.execution.max_order_leverage_multiple)

    def observe(self, equity: Decimal) -> None:
        """Remember the equity of a mark."""
        self._equity.append(equity)

    def refusal(self, order: SubmitOrder, price: Decimal | None, held: Decimal) -> str | None:
        """Why ``order`` (priced at ``price``, the last close; ``held`` the signed position) is refused, or None."""
        delta = order.qty if order.side is Side.BUY else -order.qty
        if held != 0 and abs(held + delta) <= abs(held) and (held + delta == 0 or (held > 0) == (held + delta > 0)):
            return None   # only reduces the position
        if price is None or price <= 0:
            return f"no price of {order.symbol} to measure the order's notional against equity"
        if not self._equity:
            return "no equity marked yet to measure the order's notional against"
        equity = min(self._equity)
        notional = order.qty * price
        limit = equity * self.max_gross_leverage * self.multiple
        if equity <= 0 or notional > limit:
            return (f"notional {notional:.6g} is beyond {self.multiple} x max_gross_leverage "
                    f"{self.max_gross_leverage} x equity {equity:.6g} = {limit:.6g} "
                    "(execution.max_order_leverage_multiple): refused by the executor")
        return None


__all__ = ["NotionalCap"]
