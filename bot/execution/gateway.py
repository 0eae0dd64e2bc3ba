"""The exchange executor's reads through ccxt, with its retries: one object both it and reconciliation hold.

:class:`OrderGateway` runs any request with the retry policy (:func:`~bot.feeds.retry.call_with_retry`:
backoff, ``Retry-After`` honoured for 429 and 418) and makes the lookups that the per-bar polling of
:mod:`bot.execution.exchange` and the start-up comparison of :mod:`bot.execution.reconcile` share: an
order by its client order id, the trades of an order, a market's assets.  Placing and cancelling stay
with the executor, which owns their once-only rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt

from bot.feeds.retry import RetryPolicy, call_with_retry


class OrderGateway:
    """``exchange`` (a ccxt async client) behind the retry ``policy``; ``sleep`` waits between attempts."""

    def __init__(self, exchange: Any, policy: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.exchange = exchange
        self.policy = policy
        self.sleep = sleep

    async def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, what: str, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` with the retries; ``what`` names it in the log."""
        return await call_with_retry(fn, *args, what=what, policy=self.policy, exchange=self.exchange,
                                     error_type=None, sleep=self.sleep, **kwargs)

    async def lookup(self, symbol: str, client_id: str) -> dict[str, Any] | None:
        """The exchange's order with ``client_id`` (``origClientOrderId``), or None when it has none."""
        async def fetch() -> dict[str, Any] | None:
            try:
                return await self.exchange.fetch_order(None, symbol, {"origClientOrderId": client_id})
            except ccxt.OrderNotFound:   # the normal answer before a first placement: not an error
                return None
        return await self.call(fetch, what=f"lookup {client_id}")

    async def trades_of(self, symbol: str, exchange_id: str | None, client_id: str) -> list[dict[str, Any]]:
        """The trades of order ``exchange_id``, oldest first (ties by trade id)."""
        trades = await self.call(self.exchange.fetch_my_trades, symbol, None, None, {"orderId": exchange_id},
                                 what=f"trades of {client_id}")
        return sorted((tr for tr in trades if str(tr.get("order")) == exchange_id),
                      key=lambda tr: (int(tr.get("timestamp") or 0), str(tr.get("id"))))

    def assets(self, symbol: str) -> tuple[str, str]:
        """``(base, quote)`` of ``symbol``'s market."""
        m = self.exchange.market(symbol)
        return m["base"], m["quote"]


__all__ = ["OrderGateway"]
