"""The executors' last line of defence: an order far beyond equity x the leverage cap is refused with the
reason, never filled (paper) or sent (exchange), even when one absurd mark has inflated the equity."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from stubkit import BTC, ETH, T0, H, candle, make_stub, marked, open_executor, order, posts

from bot.config import Settings
from bot.errors import ExecutionError
from bot.events import Candle, Side, SubmitOrder
from bot.execution.limits import NotionalCap
from bot.execution.paper import PaperAccount, PaperExecutor

CAP = NotionalCap(D("1.5"), D("4"))   # the defaults: 6 x equity


def buy(symbol: str, qty: str, bar_ms: int = T0) -> SubmitOrder:
    return SubmitOrder(f"r:{bar_ms}:{symbol}", symbol, bar_ms, Side.BUY, D(qty), D(1))


def test_the_cap_is_measured_against_the_lesser_of_the_last_two_equity_marks() -> None:
    cap = NotionalCap.from_settings(Settings())
    assert (cap.max_gross_leverage, cap.multiple) == (D("1.5"), D("4"))
    cap.observe(D("10000"))
    assert cap.refusal(buy(ETH, "30"), D("2000"), D(0)) is None            # 60,000 = 6 x 10,000: allowed
    assert "beyond 4 x max_gross_leverage 1.5 x equity 10000" in cap.refusal(buy(ETH, "30.001"), D("2000"), D(0))
    cap.observe(D("5.47e12"))                                              # one absurd mark
    why = cap.refusal(buy(ETH, "848684801"), D("2000"), D(0))
    assert why is not None and "equity 10000" in why
    sell_all = SubmitOrder("r:x", BTC, T0, Side.SELL, D("1e9"), D(1))
    assert cap.refusal(sell_all, D("1e14"), D("1e9")) is None              # only reduces: no new risk


def test_no_equity_or_no_price_refuses() -> None:
    assert "no equity marked yet" in NotionalCap(D(1), D(1)).refusal(buy(BTC, "1"), D("1"), D(0))
    cap = NotionalCap(D(1), D(1))
    cap.observe(D(100))
    assert "no price" in cap.refusal(buy(BTC, "1"), None, D(0))


@pytest.mark.asyncio
async def test_paper_refuses_and_never_fills_an_order_far_beyond_equity() -> None:
    ex = PaperExecutor(PaperAccount(D("10000"), D("10"), D("0"), D("0.01"), symbols=[BTC, ETH]), CAP)
    ex.mark(T0, {BTC: D("40000"), ETH: D("2000")})
    with pytest.raises(ExecutionError, match=r"order 'r:\d+:ETH/USDT': notional .* refused by the executor"):
        await ex.submit(buy(ETH, "848684801"))
    assert ex.open_orders() == ()
    next_bar = Candle(ETH, T0 + H, T0 + 2 * H - 1, D("2000"), D("2000"), D("2000"), D("2000"), D("1"))
    assert await ex.on_bar([next_bar]) == []
    assert ex.cash == D("10000")
    await ex.submit(buy(ETH, "1"))   # a sane order passes
    assert len(ex.open_orders()) == 1


@pytest.mark.asyncio
async def test_the_exchange_executor_refuses_before_sending_and_counts_it() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            with pytest.raises(ExecutionError, match="refused by the executor"):
                await ex.submit(order(BTC, T0, "buy", "2"))   # 80,000 against 10,000 of equity
            assert posts(stub) == []
            assert ex.rejections == {"limits: notional beyond equity x leverage cap": 1}
            await ex.submit(order(BTC, T0, "buy", "0.01"))
            assert len(posts(stub)) == 1
            assert await ex.on_bar([candle(BTC, T0 + H, "40000"), candle(ETH, T0 + H, "2000")])
        finally:
            await ex.aclose()
