"""The daemon against a misbehaving exchange: 100 forced connection drops, and a mix of half-open
silences, repeated, reordered and withheld klines, a server shutdown and hostile frames.  Every
closed bar must be decided exactly once, and the decisions and fills must equal a clean run's."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.config import Settings
from bot.feeds.replay.csvdata import Series
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.runs.daemon import DaemonResult, run_daemon

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 32
H = 3_600_000


def settings_for(exchange: ReplayExchange, db: Path) -> Settings:
    return Settings().with_overrides(
        run={"db": str(db), "id": "faults"}, market={"symbols": SYMBOLS, "window": WINDOW},
        feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 0.5,
              "reconnect_base_s": 0.01, "reconnect_max_s": 0.1, "silence_timeout_s": 0.4,
              "ping_interval_s": 0.3},
        recovery={"max_missed_bars": 100_000},
        forecast={"skill": {"enabled": False}},
        risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}})


async def replay(data: dict[str, Series], db: Path, bars: int, pace_s: float,
                 chaos: Callable[[ReplayExchange], Awaitable[None]] | None = None) -> DaemonResult:
    last_bar = int(data["BTC/USDT"].open_ms[WINDOW + bars - 1])
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=pace_s, start_index=WINDOW) as exchange:
        daemon = asyncio.create_task(run_daemon(settings_for(exchange, db), asyncio.Event(),
                                                stop_after_bar_ms=last_bar))
        monkey = asyncio.create_task(chaos(exchange)) if chaos else None
        try:
            result = await asyncio.wait_for(daemon, 240)
        finally:
            for task in (daemon, monkey):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (daemon, monkey) if t is not None), return_exceptions=True)
    return result


def trade_log(db: Path) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "equity": "SELECT bar_ms, cash, equity FROM equity",
        "fills": "SELECT order_id, bar_ms, side, qty, price, fee FROM fills",
        "decisions": "SELECT bar_ms, symbol, action, target_qty FROM decisions",
        "forecasts": "SELECT bar_ms, symbol, mu, sigma FROM forecasts",
        "candles": "SELECT bar_ms, symbol, open, high, low, close, volume FROM candles",
    }
    with sqlite3.connect(db) as conn:
        return {name: sorted(conn.execute(sql).fetchall()) for name, sql in queries.items()}


def assert_same_as_clean(db: Path, clean_db: Path, bars: int) -> None:
    got, want = trade_log(db), trade_log(clean_db)
    bar_times = [b for b, _, _ in want["equity"]]
    assert len(bar_times) == bars and bar_times == [bar_times[0] + i * H for i in range(bars)]
    assert len(want["fills"]) > 10
    for table in want:
        assert got[table] == want[table], f"{table} differ from the clean run"


@pytest.mark.asyncio
async def test_a_hundred_forced_drops_miss_no_bar_and_change_no_decision(tmp_path: Path) -> None:
    bars = 300
    data = generate_market(SYMBOLS, WINDOW + bars, 1_704_067_200_000, seed=31)
    clean = tmp_path / "clean.sqlite"
    await replay(data, clean, bars, pace_s=0.0)

    drops = 0

    async def drop_a_hundred_times(exchange: ReplayExchange) -> None:
        nonlocal drops
        rng = random.Random(5)
        while drops < 100:
            await asyncio.sleep(rng.uniform(0.02, 0.08))
            if await exchange.faults.drop_connections():   # a drop only counts if a connection was there
                drops += 1

    db = tmp_path / "dropped.sqlite"
    result = await replay(data, db, bars, pace_s=0.04, chaos=drop_a_hundred_times)
    assert drops == 100
    assert result.reconnects >= 100
    assert_same_as_clean(db, clean, bars)
    # The bars the stream lost while down were fetched through REST and decided late, with that reason.
    with sqlite3.connect(db) as conn:
        late = conn.execute("SELECT count(DISTINCT bar_ms) FROM decisions WHERE reason LIKE 'late%'").fetchone()[0]
    assert late == result.stats.late_bars and late > 0


@pytest.mark.asyncio
async def test_silence_repeats_reordering_withheld_klines_shutdown_and_garbage(tmp_path: Path) -> None:
    bars = 240
    data = generate_market(SYMBOLS, WINDOW + bars, 1_704_067_200_000, seed=32)
    clean = tmp_path / "clean.sqlite"
    await replay(data, clean, bars, pace_s=0.0)

    async def chaos(exchange: ReplayExchange) -> None:
        rng = random.Random(6)
        while not exchange.bars_sent:
            await asyncio.sleep(0.01)
        actions = [
            lambda: exchange.faults.go_silent(0.8),                       # half-open: nothing sent, pings unanswered
            lambda: exchange.faults.duplicate_closed(5),                  # an exchange repeating itself
            lambda: exchange.faults.reorder_next_bar(),                   # out of order, and a stale kline again
            lambda: exchange.faults.skip_closed(rng.choice(SYMBOLS), 3),  # closed klines never sent
        ]
        for round_ in range(12):
            await asyncio.sleep(rng.uniform(0.2, 0.5))
            actions[round_ % len(actions)]()
            if round_ == 5:
                await exchange.faults.send_server_shutdown(close_after_s=0.1)
            if round_ % 3 == 0:
                await exchange.faults.inject_frame('{"stream": "btcusdt@kline_1h", "data": {"e": "kline", "k": NaN}}')
                await exchange.faults.inject_frame(b"\x00\xff" * 16)

    db = tmp_path / "chaos.sqlite"
    result = await replay(data, db, bars, pace_s=0.03, chaos=chaos)
    assert_same_as_clean(db, clean, bars)
    assert result.feed_counts.get("rejected", 0) >= 1
    with sqlite3.connect(db) as conn:
        rejected = conn.execute("SELECT sum(count) FROM rejections WHERE source = 'websocket'").fetchone()[0]
    assert rejected and rejected >= 1
