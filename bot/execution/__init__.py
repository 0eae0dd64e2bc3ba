"""Execution: turn :class:`~bot.events.SubmitOrder` into fills and mark the account.

Two implementations share the small :class:`Executor` protocol below: the paper
executor (``bot.execution.paper``, simulated fills with exact accounting) and the
exchange executor (``bot.execution.exchange``, real orders through ccxt).  The engine talks only to the protocol,
so there is no ``if paper:`` branch anywhere.

Per bar the engine calls, in this order::

    expiry_reason / cancel_open     → open orders past their time are cancelled
    on_bar(closed candles)          → fills of orders decided on an earlier bar, at this bar's open
    apply_funding(open_ms, opens)   → FundingPaid of positions held at the open (8-h boundaries only)
    liquidate(closed candles)       → forced closes of positions whose margin the bar's range exhausted
    mark(bar_ms, closes)            → EquityMarked
    cancel_open(...) / submit(order) for the decisions taken at this bar's close
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable

from bot.events import Candle, EquityMarked, FundingPaid, OrderFilled, SubmitOrder


@runtime_checkable
class Executor(Protocol):
    """Places orders, reports their fills and marks the account."""

    async def submit(self, order: SubmitOrder) -> SubmitOrder:
        """Accept ``order`` for filling at a later bar and return it as placed (type, limit price);
        ExecutionError if it is refused (the engine logs the order as cancelled with the reason)."""
        ...

    def expiry_reason(self, order: SubmitOrder, bar_ms: int, timeframe_ms: int) -> str | None:
        """Why open ``order`` must be cancelled at the open of ``bar_ms`` (never filled late), or None."""
        ...

    async def on_bar(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        """Fill each open order decided before a candle's bar, at that candle's open, its symbol only."""
        ...

    async def liquidate(self, candles: Sequence[Candle]) -> list[OrderFilled]:
        """Close each position whose candle's adverse extreme reached its liquidation price (reason "liquidation")."""
        ...

    def apply_funding(self, bar_ms: int, marks: Mapping[str, Decimal]) -> list[FundingPaid]:
        """Settle perpetual funding at the open ``bar_ms`` if it is a funding time; ``marks`` are the opens."""
        ...

    def mark(self, bar_ms: int, marks: Mapping[str, Decimal]) -> EquityMarked:
        """Mark positions at ``marks`` (absent symbols keep their last mark): equity = cash + Σ qty × mark."""
        ...

    def cancel_open(self, reason: str, symbol: str | None = None) -> list[tuple[str, str]]:
        """Cancel open orders (of ``symbol`` only, if given) and return ``(order_id, reason)`` pairs."""
        ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held in ``symbol`` (negative when short, zero when flat)."""
        ...

    @property
    def cash(self) -> Decimal:
        """Cash in the quote asset, after every fee paid."""
        ...

    def open_orders(self) -> tuple[SubmitOrder, ...]:
        """Orders submitted and not yet filled or cancelled."""
        ...

    @property
    def last_equity(self) -> EquityMarked | None:
        """The latest mark, or None before the first."""
        ...


__all__ = ["Executor"]
