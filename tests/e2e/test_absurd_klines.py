"""The daemon against a replay exchange that streams a well-formed but absurd kline (BTC high = close =
99999999999999) and a conflicting duplicate (two different closed ETH klines for one bar, the false one
first), while its REST API serves the true bars.

Each is held, settled through REST and counted: the run's trade log equals a clean run's (no order, no fill,
no candle from the false klines).  With REST failing at that moment, the absurd kline is refused: BTC is not
traded that bar, and still nothing is ordered or filled on it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_feed_faults import SYMBOLS, WINDOW, replay, trade_log

from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.reporting.run_report import load_report

BARS = 40
ABSURD = "99999999999999"


def absurd(k: dict[str, Any]) -> None:
    k.update(h=ABSURD, c=ABSURD)


def other_close(k: dict[str, Any]) -> None:
    k["c"] = k["l"] if k["c"] != k["l"] else k["h"]   # still a valid kline, but not the exchange's


def at_bar(n: int, then: Callable[[ReplayExchange], None]) -> Callable[[ReplayExchange], Awaitable[None]]:
    async def chaos(exchange: ReplayExchange) -> None:
        while exchange.bars_sent < n:
            await asyncio.sleep(0.005)
        then(exchange)
    return chaos


def rejections(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {r: n for r, n in conn.execute("SELECT reason, count FROM rejections WHERE source = 'websocket'")}


def largest_close(db: Path) -> Decimal:
    with sqlite3.connect(db) as conn:
        return max(Decimal(c) for (c,) in conn.execute("SELECT close FROM candles WHERE symbol = 'BTC/USDT'"))


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_absurd_kline_and_a_conflicting_duplicate_are_settled_by_rest(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + BARS, 1_704_067_200_000, seed=31)
    clean = tmp_path / "clean.sqlite"
    await replay(data, clean, BARS, pace_s=0.0)

    def arm(exchange: ReplayExchange) -> None:
        exchange.faults.falsify_closed("BTC/USDT", absurd)
        exchange.faults.falsify_closed("ETH/USDT", other_close, then_true=True)

    db = tmp_path / "faulty.sqlite"
    await replay(data, db, BARS, pace_s=0.02, chaos=at_bar(20, arm))
    assert rejections(db) == {"implausible kline: REST's candle used": 1, "conflicting klines: REST's candle used": 1}
    got, want = trade_log(db), trade_log(clean)
    assert len(want["fills"]) > 5
    for table in want:   # candles, decisions, forecasts, fills, equity: as if the false klines never came
        assert got[table] == want[table], f"{table} differ from the clean run"
    assert largest_close(db) < Decimal(10) ** 6
    assert load_report(db).reconciles


@pytest.mark.slow
@pytest.mark.asyncio
async def test_without_rest_the_absurd_kline_is_refused_and_not_traded(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + BARS, 1_704_067_200_000, seed=31)

    def arm(exchange: ReplayExchange) -> None:
        exchange.faults.fail_next_rest("500", n=50)   # every retry of the check fails
        exchange.faults.falsify_closed("BTC/USDT", absurd)

    db = tmp_path / "norest.sqlite"
    await replay(data, db, BARS, pace_s=0.05, chaos=at_bar(20, arm))
    assert rejections(db) == {"implausible kline: refused, no REST candle (not traded this bar)": 1}
    assert largest_close(db) < Decimal(10) ** 6
    with sqlite3.connect(db) as conn:
        missing = conn.execute("SELECT COUNT(*) FROM decisions WHERE symbol = 'BTC/USDT' AND reason LIKE "
                               "'no closed bar for this symbol%'").fetchone()[0]
        fills = [(Decimal(q) * Decimal(p)) for q, p in conn.execute("SELECT qty, price FROM fills")]
        refused = conn.execute("SELECT COUNT(*) FROM orders WHERE status_reason LIKE 'refused:%'").fetchone()[0]
    assert missing == 1                      # BTC not traded that bar: as a missing kline
    assert fills and max(fills) < 100_000    # nothing sized on the absurd price (initial cash 10,000)
    assert refused == 0
    assert load_report(db).reconciles
