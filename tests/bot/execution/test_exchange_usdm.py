"""The exchange executor on USDT-M futures: real ccxt ``binanceusdm`` against the futures REST stub on loopback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from stubkit import BTC, ETH, T0, D, H, candle, make_usdm_stub, marked, open_executor, order, posts, settings_for

from binance_usdm_stub import BinanceUsdmStub
from bot.errors import ExecutionError
from bot.events import OrderFilled, SubmitOrder
from bot.execution.exchange import ExchangeExecutor
from bot.execution.orders import client_order_id
from bot.reporting.run_report import load_report
from bot.store.trade_store import BarRecord, TradeStore

RUN = "live-test"
PRICES = {BTC: "40000", ETH: "2000"}
USDM: dict[str, Any] = {"market": "usdm"}


def book_cash(stub: BinanceUsdmStub) -> D:
    """The exchange's account in the book's terms: wallet less the positions' entry value."""
    return stub.wallet - sum((amt * entry for amt, entry in stub.positions.values()), D(0))


def equity_matches(ex: ExchangeExecutor, stub: BinanceUsdmStub, bar_ms: int) -> bool:
    marks = {s: stub.prices[m.market_id] for m in stub.markets.values() for s in (stub.symbols[m.market_id],)}
    return ex.mark(bar_ms, marks).equity == stub.wallet + stub.unrealized()


# --- leverage -----------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_leverage_is_set_per_symbol_before_its_first_order_and_clamped_to_the_bracket() -> None:
    async with make_usdm_stub() as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            await ex.submit(order(BTC, T0, "buy", "0.01", leverage="2.5"))       # whole numbers: rounded up
            await ex.submit(order(ETH, T0, "sell", "0.5", leverage="40"))        # ETH's bracket allows 20
            marked(ex, T0 + H, PRICES)
            await ex.submit(order(BTC, T0 + H, "buy", "0.01", leverage="3"))     # unchanged: not sent again
            assert stub.leverage_requests == [("BTCUSDT", 3), ("ETHUSDT", 20)]
            assert stub.leverage_of(BTC) == 3 and stub.leverage_of(ETH) == 20
            signed = [(m, p, q.get("symbol")) for m, p, q in stub.requests
                      if p in ("/fapi/v1/leverage", "/fapi/v1/order") and m == "POST"]
            assert signed == [("POST", "/fapi/v1/leverage", "BTCUSDT"), ("POST", "/fapi/v1/order", "BTCUSDT"),
                              ("POST", "/fapi/v1/leverage", "ETHUSDT"), ("POST", "/fapi/v1/order", "ETHUSDT"),
                              ("POST", "/fapi/v1/order", "BTCUSDT")]
            # Margin on the exchange is notional / leverage: 800/3 + 1000/20 of initial margin is held.
            assert stub.available() == stub.wallet - D(800) / 3 - D(50)
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_an_order_that_only_reduces_the_position_leaves_the_leverage_alone() -> None:
    async with make_usdm_stub(wallet="1000") as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            await ex.submit(order(BTC, T0, "buy", "0.1", leverage="5"))          # 4000 notional, 800 margin
            await ex.on_bar([candle(BTC, T0 + H, "40000")])
            # The engine's closing order says leverage 1; lowering it would need 4000 of margin (-2028).
            marked(ex, T0 + H, PRICES)
            await ex.submit(order(BTC, T0 + H, "sell", "0.05", leverage="1"))
            await ex.on_bar([candle(BTC, T0 + 2 * H, "40000")])
            assert stub.leverage_requests == [("BTCUSDT", 5)] and stub.position(BTC) == ex.position(BTC) == D("0.05")
            # A flip through zero opens a short: its leverage is set first.
            marked(ex, T0 + 2 * H, PRICES)
            await ex.submit(order(BTC, T0 + 2 * H, "sell", "0.06", leverage="10"))
            await ex.on_bar([candle(BTC, T0 + 3 * H, "40000")])
            assert stub.leverage_requests == [("BTCUSDT", 5), ("BTCUSDT", 10)]
            assert stub.position(BTC) == ex.position(BTC) == D("-0.01") and ex.cash == book_cash(stub)
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_leverage_above_the_exchange_bracket_without_clamping_is_a_refusal() -> None:
    async with make_usdm_stub() as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            ex._max_leverage[ETH] = None     # brackets unknown: the exchange's own check refuses it
            with pytest.raises(ExecutionError, match="Leverage 40 is not valid"):
                await ex.submit(order(ETH, T0, "sell", "0.5", leverage="40"))
            assert posts(stub) == [] and stub.leverage_requests == [] and sum(ex.rejections.values()) == 1
        finally:
            await ex.aclose()


# --- market orders: long and short ---------------------------------------------------------------------

@pytest.mark.asyncio
async def test_market_long_and_short_fill_once_per_trade_and_the_book_matches_the_account() -> None:
    async with make_usdm_stub(fill_parts=2) as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            long = await ex.submit(order(BTC, T0, "buy", "0.05", leverage="2"))
            short = await ex.submit(order(ETH, T0, "sell", "1", leverage="5"))   # from flat: opens a short
            assert long.order_type == short.order_type == "market"
            fills = await ex.on_bar([candle(BTC, T0 + H, "40000"), candle(ETH, T0 + H, "2000")])
            assert [(f.symbol, f.side.value, f.qty, f.final) for f in fills] == [
                (BTC, "buy", D("0.025"), False), (BTC, "buy", D("0.025"), True),
                (ETH, "sell", D("0.5"), False), (ETH, "sell", D("0.5"), True)]
            assert sorted(f.trade_id for f in fills) == sorted(str(t["id"]) for t in stub.trades)
            assert all(f.fee == f.qty * f.price * D("0.0005") for f in fills)   # commission in USDT, taker
            assert await ex.on_bar([candle(BTC, T0 + 2 * H, "40000"), candle(ETH, T0 + 2 * H, "2000")]) == []
            assert ex.position(BTC) == stub.position(BTC) == D("0.05")
            assert ex.position(ETH) == stub.position(ETH) == D("-1")
            assert stub.wallet == D(10000) - D("1") - D("1")                    # fees only: nothing realized
            assert ex.cash == book_cash(stub) == D(10000) - 2000 + 2000 - 2
            assert ex.open_orders() == () and list(stub.placements.values()) == [1, 1]

            # Prices move; the short is closed at a profit, the long halved at a loss.
            stub.set_price(ETH, D("1900"))
            stub.set_price(BTC, D("39000"))
            marked(ex, T0 + 2 * H, {BTC: "39000", ETH: "1900"})
            assert equity_matches(ex, stub, T0 + 2 * H)
            await ex.submit(order(ETH, T0 + 2 * H, "buy", "1", leverage="5"))
            await ex.submit(order(BTC, T0 + 2 * H, "sell", "0.025", leverage="2"))
            closing = await ex.on_bar([candle(BTC, T0 + 3 * H, "39000"), candle(ETH, T0 + 3 * H, "1900")])
            assert len(closing) == 4 and len({f.trade_id for f in fills + closing}) == 8
            assert ex.position(ETH) == stub.position(ETH) == 0
            assert ex.position(BTC) == stub.position(BTC) == D("0.025")
            realized = sum(D(t["realizedPnl"]) for t in stub.trades)
            assert realized == D(100) - D(25)
            assert ex.cash == book_cash(stub) and equity_matches(ex, stub, T0 + 3 * H)
            assert stub.leverage_requests == [("BTCUSDT", 2), ("ETHUSDT", 5)]
        finally:
            await ex.aclose()


# --- refusals and rate limits ------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_margin_insufficient_is_a_refusal_counted_by_reason() -> None:
    async with make_usdm_stub(wallet="100") as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            # 0.01 BTC at 40000 with leverage 2 needs 200 USDT of margin; the wallet has 100.
            with pytest.raises(ExecutionError, match=r"InsufficientFunds.*Margin is insufficient\."):
                await ex.submit(order(BTC, T0, "buy", "0.01", leverage="2"))
            assert ex.rejections["InsufficientFunds"] == 1
            assert "Margin is insufficient" in ex.rejection_examples["InsufficientFunds"]
            assert len(posts(stub)) == 1 and not stub.placements and ex.open_orders() == ()
            # At leverage 5 the same order needs 80: placed.
            marked(ex, T0 + H, PRICES)
            await ex.submit(order(BTC, T0 + H, "buy", "0.01", leverage="5"))
            assert sum(stub.placements.values()) == 1 and stub.position(BTC) == D("0.01")
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_429_with_retry_after_is_honoured_and_the_futures_order_placed_once() -> None:
    async with make_usdm_stub() as stub:
        ex = await open_executor(stub, **USDM)
        try:
            marked(ex, T0, PRICES)
            stub.fail_next("POST", "/fapi/v1/order", status=429, retry_after=1)
            started = time.monotonic()
            await ex.submit(order(ETH, T0, "sell", "0.5", leverage="3"))
            assert time.monotonic() - started >= 1.0
            assert len(posts(stub)) == 2 and list(stub.placements.values()) == [1]
            assert stub.position(ETH) == D("-0.5")
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_timeout_after_the_futures_order_went_in_is_looked_up_not_repeated() -> None:
    async with make_usdm_stub() as stub:
        ex = await open_executor(stub, timeout_s=0.3, **USDM)
        try:
            marked(ex, T0, PRICES)
            stub.fail_next("POST", "/fapi/v1/order", delay_s=1.0)
            await ex.submit(order(BTC, T0, "sell", "0.01"))
            cid = client_order_id(RUN, T0, "BTCUSDT")
            assert len(posts(stub)) == 1 and stub.placements[cid] == 1
            fills = await ex.on_bar([candle(BTC, T0 + H, "40000")])
            assert len(fills) == 1 and fills[0].final and ex.position(BTC) == stub.position(BTC) == D("-0.01")
        finally:
            await ex.aclose()


# --- restarts and reconciliation ---------------------------------------------------------------------

async def write(store: TradeStore, ex: ExchangeExecutor, bar_ms: int, fills: list[OrderFilled],
                orders: tuple[SubmitOrder, ...] = ()) -> None:
    equity = ex.mark(bar_ms, {s: D(p) for s, p in PRICES.items()})
    await store.write_bar(RUN, BarRecord(bar_ms, (), (), (), orders, tuple(fills), (), equity))


async def session(store: TradeStore, stub: BinanceUsdmStub, **exchange: Any) -> ExchangeExecutor:
    s = settings_for(stub, **USDM, **exchange)
    _, resume = await store.begin_run(RUN, "live", s.to_json(), s.config_hash, "test", T0)
    return await open_executor(stub, resume, await store.logged_trades(RUN), **USDM, **exchange)


@pytest.mark.asyncio
async def test_restart_in_the_middle_of_a_partially_filled_short_logs_every_trade_once(tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    limit = {"order_type": "limit", "limit_offset_bps": "10", "limit_ttl_bars": 10, "cancel_on_shutdown": False}
    async with make_usdm_stub() as stub, await TradeStore.open(db) as store:
        # Session 1: a limit sell rests above the close (a short from flat), one trade is logged, then a crash.
        ex = await session(store, stub, **limit)
        marked(ex, T0, PRICES)
        placed = await ex.submit(order(ETH, T0, "sell", "3", leverage="4"))
        assert placed.limit_price == D("2002.00") and stub.leverage_requests == [("ETHUSDT", 4)]
        await write(store, ex, T0, [], (placed,))
        cid = posts(stub)[0]["newClientOrderId"]
        stub.fill(cid, D("1"))
        first = await ex.on_bar([candle(ETH, T0 + H, "2000")])
        assert len(first) == 1 and not first[0].final
        await write(store, ex, T0 + H, first)
        stub.fill(cid, D("1"))             # a trade while the bot is down
        await ex.exchange.close()          # kill -9: nothing cancelled

        # Session 2: reconciliation counts the trade made while down (no mismatch); the bar's commit is lost.
        ex = await session(store, stub, **limit)
        assert [o.order_id for o in ex.open_orders()] == [placed.order_id]
        lost = await ex.on_bar([candle(ETH, T0 + 2 * H, "2000")])
        assert len(lost) == 1 and lost[0].trade_id != first[0].trade_id
        await ex.exchange.close()

        # Session 3: the same trade comes back exactly once; then the rest fills when the price crosses.
        ex = await session(store, stub, **limit)
        again = await ex.on_bar([candle(ETH, T0 + 2 * H, "2000")])
        assert [f.trade_id for f in again] == [f.trade_id for f in lost]
        await write(store, ex, T0 + 2 * H, again)
        stub.set_price(ETH, D("2010"))
        last = await ex.on_bar([candle(ETH, T0 + 3 * H, "2010")])
        assert len(last) == 1 and last[0].final
        await write(store, ex, T0 + 3 * H, last)
        assert ex.open_orders() == () and ex.position(ETH) == stub.position(ETH) == D("-3")
        assert ex.cash == book_cash(stub) and stub.entry_price(ETH) == D("2002.00")
        await ex.aclose()

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT trade_id, side, qty FROM fills ORDER BY trade_id").fetchall()
    assert sorted(t for t, *_ in rows) == sorted(str(t["id"]) for t in stub.trades)   # each trade once
    assert -sum(D(q) for *_, q in rows) == stub.position(ETH) and {s for _, s, _ in rows} == {"sell"}
    report = load_report(db, RUN)
    assert report.orders == {"filled": 1} and report.trades == len(stub.trades) == 3
    assert all(c.ok for c in report.checks), report.checks


@pytest.mark.asyncio
async def test_reconciliation_adopts_a_position_opened_by_hand_with_its_entry_price(tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    async with make_usdm_stub() as stub, await TradeStore.open(db) as store:
        ex = await session(store, stub)
        try:
            marked(ex, T0, PRICES)
            placed = await ex.submit(order(BTC, T0, "buy", "0.01", leverage="2"))
            await write(store, ex, T0, [], (placed,))
            fills = await ex.on_bar([candle(BTC, T0 + H, "40000")])
            await write(store, ex, T0 + H, fills)
            assert len(fills) == 1 and ex.cash == book_cash(stub)
        finally:
            await ex.aclose()

        stub.trade_by_hand(ETH, "sell", D("2"))       # a short opened on the web UI while the bot is down
        stub.trade_by_hand(BTC, "buy", D("0.005"))    # and more of the bot's own long
        stub.set_price(ETH, D("1950"))
        ex = await session(store, stub)
        try:
            assert ex.position(ETH) == stub.position(ETH) == D("-2")
            assert ex.book.avg_price(ETH) == stub.entry_price(ETH) == D("2000")
            assert ex.position(BTC) == stub.position(BTC) == D("0.015")
            assert ex.book.avg_price(BTC) == stub.entry_price(BTC) == D("40000")
            assert ex.cash == book_cash(stub)
            assert equity_matches(ex, stub, T0 + 2 * H)
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_a_new_run_starts_from_the_accounts_open_positions() -> None:
    async with make_usdm_stub() as stub:
        stub.trade_by_hand(ETH, "sell", D("1.5"))
        stub.set_price(ETH, D("2100"))
        ex = await open_executor(stub, **USDM)
        try:
            assert ex.position(ETH) == D("-1.5") and ex.position(BTC) == 0
            assert ex.cash == stub.wallet + D("1.5") * 2000
            assert equity_matches(ex, stub, T0)
            # Buying back 1.5 ETH closes the short the run inherited.
            marked(ex, T0, {BTC: "40000", ETH: "2100"})
            await ex.submit(order(ETH, T0, "buy", "1.5"))
            fills = await ex.on_bar([candle(ETH, T0 + H, "2100")])
            assert len(fills) == 1 and ex.position(ETH) == stub.position(ETH) == 0
            assert ex.cash == stub.wallet and equity_matches(ex, stub, T0 + H)
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_a_config_symbol_without_a_usdm_perpetual_is_a_config_error() -> None:
    from stubkit import CREDS

    from bot.errors import ConfigError
    from bot.execution.live import open_exchange_executor

    async with make_usdm_stub() as stub:
        s = settings_for(stub, **USDM).with_overrides(market={"symbols": [BTC, "DOGE/USDT"]})
        with pytest.raises(ConfigError, match="DOGE/USDT not traded on binance usdm"):
            await open_exchange_executor(s, CREDS, None, live_flag=True)
