"""Restarts against the same Binance stub and the same SQLite file: every exchange trade logged exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from stubkit import BTC, ETH, T0, D, H, candle, make_stub, marked, open_executor, order, settings_for

from bot.events import OrderFilled, SubmitOrder
from bot.execution.exchange import ExchangeExecutor
from bot.reporting.run_report import load_report
from bot.store.trade_store import BarRecord, TradeStore

RUN = "live-test"
PRICES = {BTC: "40000", ETH: "2000"}


async def write(store: TradeStore, ex: ExchangeExecutor, bar_ms: int, fills: list[OrderFilled],
                orders: tuple[SubmitOrder, ...] = (), cancelled: tuple[tuple[str, str], ...] = ()) -> None:
    equity = ex.mark(bar_ms, {s: D(p) for s, p in PRICES.items()})
    await store.write_bar(RUN, BarRecord(bar_ms, (), (), (), orders, tuple(fills), cancelled, equity))


async def session(store: TradeStore, stub, **exchange) -> ExchangeExecutor:  # type: ignore[no-untyped-def]
    s = settings_for(stub, **exchange)
    _, resume = await store.begin_run(RUN, "live", s.to_json(), s.config_hash, "test", T0)
    return await open_executor(stub, resume, await store.logged_trades(RUN), **exchange)


def fill_rows(db: Path) -> list[tuple[str, str, str]]:
    import sqlite3
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT order_id, trade_id, qty FROM fills ORDER BY trade_id").fetchall()


@pytest.mark.asyncio
async def test_restart_in_the_middle_of_a_partially_filled_order_logs_every_trade_once(tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    limit = {"order_type": "limit", "limit_ttl_bars": 10, "cancel_on_shutdown": False}
    async with make_stub() as stub, await TradeStore.open(db) as store:
        # Session 1: a limit buy rests, one partial trade is logged, then the process dies.
        ex = await session(store, stub, **limit)
        marked(ex, T0, PRICES)
        placed = await ex.submit(order(BTC, T0, "buy", "0.04"))
        await write(store, ex, T0, [], (placed,))
        cid = stub.order_requests()[0]["newClientOrderId"]
        stub.fill(cid, D("0.01"))
        first = await ex.on_bar([candle(BTC, T0 + H, "40000")])
        assert len(first) == 1 and not first[0].final
        await write(store, ex, T0 + H, first)
        stub.fill(cid, D("0.01"))          # a trade while the bot is down
        await ex.exchange.close()          # kill -9: no shutdown, nothing cancelled

        # Session 2: reconciliation sees the trade made while down; it is reported, but the bar's commit is lost.
        ex = await session(store, stub, **limit)
        assert [o.order_id for o in ex.open_orders()] == [placed.order_id]
        lost = await ex.on_bar([candle(BTC, T0 + 2 * H, "40000")])
        assert [f.trade_id for f in lost] != [first[0].trade_id] and len(lost) == 1
        await ex.exchange.close()          # killed again before the commit

        # Session 3: the same trade comes back exactly once; then the order completes.
        ex = await session(store, stub, **limit)
        again = await ex.on_bar([candle(BTC, T0 + 2 * H, "40000")])
        assert [f.trade_id for f in again] == [f.trade_id for f in lost]
        await write(store, ex, T0 + 2 * H, again)
        stub.set_price(BTC, D("39000"))    # crosses the limit: the rest fills
        last = await ex.on_bar([candle(BTC, T0 + 3 * H, "39000")])
        assert len(last) == 1 and last[0].final
        await write(store, ex, T0 + 3 * H, last)
        assert ex.open_orders() == () and ex.position(BTC) == stub.balance("BTC")
        assert ex.cash == stub.balance("USDT")
        await ex.aclose()

    rows = fill_rows(db)
    assert sorted(t for _, t, _ in rows) == sorted(str(t["id"]) for t in stub.trades)   # each trade once
    assert sum(D(q) for *_, q in rows) == stub.balance("BTC")
    report = load_report(db, RUN)
    assert report.orders == {"filled": 1} and report.trades == len(stub.trades) == 3
    assert all(c.ok for c in report.checks), report.checks


@pytest.mark.asyncio
async def test_reconciliation_adopts_the_exchange_balance_and_cancels_unlogged_orders(tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    async with make_stub() as stub, await TradeStore.open(db) as store:
        cfg = {"order_type": "limit", "cancel_on_shutdown": False}
        ex = await session(store, stub, **cfg)
        marked(ex, T0, PRICES)
        await write(store, ex, T0, [])
        await ex.aclose()
        stub.free["USDT"] += D("250")       # a deposit the trade log cannot know
        stub.free["ETH"] = D("0.5")         # and a holding bought by hand
        # An order of this run placed just before a crash, never committed to the trade log:
        ex = await session(store, stub, **cfg)
        marked(ex, T0 + H, PRICES)
        await ex.submit(order(BTC, T0 + H, "buy", "0.01"))
        await ex.exchange.close()

        ex = await session(store, stub, **cfg)
        try:
            assert ex.cash == stub.balance("USDT") == D("10250")
            assert ex.position(ETH) == D("0.5")
            assert len(ex._orphans) == 1
            await ex.on_bar([candle(BTC, T0 + 2 * H, "40000")])   # its bar was not re-decided: cancelled
            assert [o.status for o in stub.orders.values()] == ["CANCELED"]
        finally:
            await ex.aclose()
