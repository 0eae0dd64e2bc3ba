"""Rejection counts are committed with the bars, not only at a clean stop: a ``kill -9`` of the daemon
leaves in the ``rejections`` table every garbage frame and duplicate kline counted before the last bar."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from test_crash_recovery import START_MS, SYMBOLS, WINDOW, bars_written, daemon, write_config

from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market

GARBAGE = 7
DUPLICATES = 3


def counted(db: Path) -> dict[str, int]:
    try:
        with sqlite3.connect(db) as conn:
            return {r: int(n) for r, n in conn.execute(
                "SELECT reason, count FROM rejections WHERE source = 'websocket' AND session_no = 1")}
    except sqlite3.OperationalError:
        return {}


@pytest.mark.slow
@pytest.mark.asyncio
async def test_rejection_counts_survive_a_sigkill(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + 400, START_MS, seed=5)
    last_bar = int(data["BTC/USDT"].open_ms[WINDOW + 399])
    db, cfg = tmp_path / "kill.sqlite", tmp_path / "kill.toml"
    want = {"malformed JSON": GARBAGE, "duplicate kline": DUPLICATES}
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.1, start_index=WINDOW) as exchange:
        write_config(cfg, exchange, db)
        proc = await daemon(cfg, last_bar)
        try:
            deadline = time.monotonic() + 60
            while bars_written(db) < 2:
                assert time.monotonic() < deadline and proc.returncode is None
                await asyncio.sleep(0.02)
            for _ in range(GARBAGE):
                await exchange.faults.inject_frame("not json")
            exchange.faults.duplicate_closed(DUPLICATES)
            # Counted while the daemon runs: they reach the file with the next bars' transactions.
            while counted(db) != want:
                assert time.monotonic() < deadline, counted(db)
                assert proc.returncode is None
                await asyncio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == -signal.SIGKILL
    assert counted(db) == want
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions WHERE ended_ms IS NULL").fetchone()[0] == 1  # killed
