"""The stale-feed watchdog: an exchange that goes quiet is an outage in the trade log, and with
`watchdog.flatten` the next bar closes every position."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Settings
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.reporting.run_report import format_report, load_report
from bot.reporting.status import format_status, load_status
from bot.runs.daemon import run_daemon

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 32
BARS = 120


@pytest.mark.asyncio
async def test_a_silent_exchange_is_recorded_as_an_outage_and_flattened(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + BARS, 1_704_067_200_000, seed=41)
    last_bar = int(data["BTC/USDT"].open_ms[WINDOW + BARS - 1])
    db = tmp_path / "t.sqlite"
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.03, start_index=WINDOW) as exchange:
        settings = Settings().with_overrides(
            run={"db": str(db), "id": "wd"}, market={"symbols": SYMBOLS, "window": WINDOW},
            feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 0.5,
                  "reconnect_base_s": 0.01, "reconnect_max_s": 0.1, "silence_timeout_s": 5.0},
            watchdog={"stale_after_s": 0.6, "flatten": True},
            recovery={"max_missed_bars": 100_000},
            forecast={"skill": {"enabled": False}},
            risk={"gate": {"rule": "strength", "long_entry_strength": 0.02, "short_entry_strength": 0.02, "exit_strength": 0.0}})
        daemon = asyncio.create_task(run_daemon(settings, asyncio.Event(), stop_after_bar_ms=last_bar))
        try:
            while exchange.bars_sent < 50:
                await asyncio.sleep(0.01)
            exchange.faults.go_silent(1.5)   # nothing on the wire for longer than stale_after_s
            result = await asyncio.wait_for(daemon, 120)
        finally:
            daemon.cancel()
            await asyncio.gather(daemon, return_exceptions=True)
    assert result.stats.outages == 1

    with sqlite3.connect(db) as conn:
        (started, ended, last, reason, flattened), = conn.execute(
            "SELECT started_ms, ended_ms, last_bar_ms, reason, flattened FROM outages").fetchall()
        assert ended is not None and ended > started and flattened == 1 and "no closed bar" in reason
        # The first bar decided after the outage is HALTED and closes every position.
        nxt = conn.execute("SELECT min(bar_ms) FROM equity WHERE bar_ms > ?", (last,)).fetchone()[0]
        decisions = conn.execute("SELECT target_qty, reason FROM decisions WHERE bar_ms = ?", (nxt,)).fetchall()
        assert decisions and all(Decimal(t) == 0 and "feed outage" in r for t, r in decisions)
        held_before = conn.execute("SELECT count(*) FROM positions WHERE bar_ms = ?", (last,)).fetchone()[0]
        assert held_before > 0, "the test needs positions to flatten"
        (state,) = conn.execute("SELECT state FROM risk_state WHERE bar_ms = ?", (nxt,)).fetchone()
        assert state == "HALTED"
    assert "outage" in format_status(load_status(db)).lower()
    report = format_report(load_report(db))
    assert "Outages     1" in report
