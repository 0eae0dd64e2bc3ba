"""End to end: the real daemon against the replay exchange, notifying a real local webhook.

Fills and the daily summary must reach the webhook, matching the trade log; a dead webhook
(connection refused) must neither slow nor stop the engine.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Settings
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.notify.receiver import NotificationReceiver
from bot.runs.daemon import DaemonResult, run_daemon

H = 3_600_000
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
WINDOW = 48
BARS = 60                         # from 2024-01-03 00:00 UTC: two whole days, summarised at bars 24 and 48
START_MS = 1_704_067_200_000      # 2024-01-01 00:00 UTC


def settings_for(exchange: ReplayExchange, db: Path, webhook_url: str, **notify: object) -> Settings:
    return Settings().with_overrides(
        run={"db": str(db), "id": "e2e"},
        market={"symbols": SYMBOLS, "window": WINDOW},
        feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 5.0},
        forecast={"skill": {"enabled": False}},
        risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05,
                       "exit_strength": 0.01}},
        notify={"webhook_url": webhook_url, **notify},
    )


async def run(db: Path, webhook_url: str, **notify: object) -> tuple[DaemonResult, float]:
    data = generate_market(SYMBOLS, WINDOW + BARS + 1, START_MS, seed=11)
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as exchange:
        started = time.perf_counter()
        result = await asyncio.wait_for(run_daemon(settings_for(exchange, db, webhook_url, **notify),
                                                   asyncio.Event(), max_bars=BARS), timeout=120)
    return result, time.perf_counter() - started


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.asyncio
async def test_fills_and_the_daily_summary_reach_the_webhook(tmp_path: Path) -> None:
    db = tmp_path / "n.sqlite"
    with NotificationReceiver() as r:
        result, _ = await run(db, r.url + "/hook")
        bodies = r.bodies("/hook")
    assert result.stats.bars == BARS and result.stats.fills > 0

    fills = [b for b in bodies if b["kind"] == "fills"]
    sent = sorted((f["order_id"], f["price"], f["fee"]) for b in fills for f in b["data"]["fills"])
    logged = sorted(rows(db, "SELECT order_id, price, fee FROM fills WHERE run_id='e2e'"))
    assert sent == logged and len(sent) == result.stats.fills
    assert all(b["run"] == "e2e" and b["time"].endswith(" UTC") for b in bodies)

    daily = [b for b in bodies if b["kind"] == "daily"]
    assert [d["data"]["day"] for d in daily] == ["2024-01-03", "2024-01-04"]
    equity = dict(rows(db, "SELECT bar_ms, equity FROM equity WHERE run_id='e2e'"))
    first = min(equity)
    assert first == START_MS + 2 * 24 * H
    for k, d in enumerate(daily):
        day_start, day_end = first + k * 24 * H, first + (k + 1) * 24 * H
        assert d["bar_ms"] == day_end                       # told at the first bar of the next day
        assert d["data"]["equity"] == equity[day_end - H]   # equity at the day's last close
        assert d["data"]["bars"] == 24 and d["data"]["whole_day"] is True
        day_fills = rows(db, f"SELECT fee FROM fills WHERE run_id='e2e' AND bar_ms >= {day_start} "
                             f"AND bar_ms < {day_end}")
        assert d["data"]["fills"] == len(day_fills)
        assert Decimal(d["data"]["fees"]) == sum((Decimal(f) for (f,) in day_fills), Decimal(0))
    assert daily[1]["data"]["start_equity"] == daily[0]["data"]["equity"]


@pytest.mark.asyncio
async def test_a_dead_webhook_neither_slows_nor_stops_the_engine(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:         # a loopback port where nothing listens: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    # Patient retries: were delivery in the engine's path, each bar would wait seconds.
    result, wall_s = await run(tmp_path / "dead.sqlite", dead, max_attempts=50, retry_max_s=5.0,
                               flush_timeout_s=1.0)
    assert result.stats.bars == BARS and result.stats.fills > 0
    assert result.stats.run_seconds < 20, result.stats.run_seconds
    assert wall_s < 40, wall_s
    assert "notification(s) not sent at shutdown (notify.flush_timeout_s = 1)" in caplog.text
    assert len(rows(tmp_path / "dead.sqlite", "SELECT bar_ms FROM equity WHERE run_id='e2e'")) == BARS
