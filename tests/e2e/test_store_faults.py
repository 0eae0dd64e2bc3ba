"""A trade log that is full, read-only or locked: the engine stops opening positions and says why,
keeps the unwritten bars, and writes them — each exactly once — when the log accepts writes again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Settings
from bot.execution.paper import PaperExecutor
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.websocket import KlineFeed
from bot.runs.daemon import build_account, build_risk
from bot.runs.engine import Engine
from bot.store.trade_store import TradeStore
from strategies.baseline import EwmaMomentumPredictor

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 32
BARS = 160
H = 3_600_000


async def full(store: TradeStore, db: Path) -> Callable[[], Awaitable[None]]:
    conn = store._conn()  # the store's own connection: SQLite's page limit is per connection
    (pages,) = await (await conn.execute("PRAGMA page_count")).fetchone()
    await conn.execute(f"PRAGMA max_page_count = {pages}")

    async def undo() -> None:
        await conn.execute("PRAGMA max_page_count = 1073741823")
    return undo


async def read_only(store: TradeStore, db: Path) -> Callable[[], Awaitable[None]]:
    conn = store._conn()
    await conn.execute("PRAGMA query_only = 1")

    async def undo() -> None:
        await conn.execute("PRAGMA query_only = 0")
    return undo


async def locked(store: TradeStore, db: Path) -> Callable[[], Awaitable[None]]:
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")

    async def undo() -> None:
        other.execute("ROLLBACK")
        other.close()
    return undo


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", [full, read_only, locked], ids=["full", "read-only", "locked"])
async def test_unwritable_trade_log_blocks_new_exposure_and_loses_nothing(
        fault: Callable[[TradeStore, Path], Awaitable[Callable[[], Awaitable[None]]]], tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + BARS, 1_704_067_200_000, seed=4)
    db = tmp_path / "t.sqlite"
    settings = Settings().with_overrides(
        run={"db": str(db), "id": "faults"}, market={"symbols": SYMBOLS, "window": WINDOW},
        feed={"backfill": False},
        forecast={"skill": {"enabled": False}},
        risk={"gate": {"rule": "strength", "long_entry_strength": 0.02, "short_entry_strength": 0.02, "exit_strength": 0.0}})
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.03, start_index=0) as exchange:
        feed = KlineFeed(exchange.ws_url, SYMBOLS, "1h", H)
        # A short busy timeout: a locked log fails a write in 0.2 s instead of 5 s.
        async with await TradeStore.open(db, busy_timeout_ms=200) as store:
            await store.begin_run("faults", "paper", settings.to_json(), settings.config_hash, "test", 0)
            engine = Engine(settings, "faults", store, PaperExecutor(build_account(settings, None)),
                            EwmaMomentumPredictor(momentum_bars=4), build_risk(settings, None))
            feed_task = asyncio.create_task(feed.run())
            run = asyncio.create_task(engine.run(feed.queue, asyncio.Event(), max_bars=BARS))
            try:
                while engine.stats.bars < WINDOW + 20:
                    await asyncio.sleep(0.01)
                undo = await fault(store, db)
                while engine.stats.unwritten < 3:
                    assert not run.done(), "the run ended before the fault was felt"
                    await asyncio.sleep(0.01)
                held = engine.stats.unwritten
                await undo()
                await asyncio.wait_for(run, 120)
            finally:
                feed_task.cancel()
                run.cancel()
                await asyncio.gather(feed_task, run, return_exceptions=True)
    assert held >= 3 and engine.stats.unwritten == 0

    with sqlite3.connect(db) as conn:
        bars = [b for (b,) in conn.execute("SELECT bar_ms FROM equity ORDER BY bar_ms")]
        decisions = conn.execute("SELECT bar_ms, symbol, target_qty, current_qty, reason FROM decisions").fetchall()
    # Every decided bar is in the log exactly once, none missing.
    assert len(bars) == BARS and bars == [bars[0] + i * H for i in range(BARS)]
    blocked = [d for d in decisions if "trade log not writable" in d[4]]
    assert blocked, "decisions taken while the log failed must say why they took no new exposure"
    for _, _, target, current, _ in blocked:
        t, c = Decimal(target), Decimal(current)
        assert abs(t) <= abs(c) and (t == 0 or (t > 0) == (c > 0))
