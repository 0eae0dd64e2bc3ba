"""`bot run` as a real process: SIGTERM mid-run leaves a consistent database, and a restart resumes the account."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 32


def write_config(path: Path, exchange: ReplayExchange, db: Path) -> None:
    path.write_text(f"""
[run]
id = "sig"
db = "{db}"
[market]
symbols = {SYMBOLS!r}
window = {WINDOW}
[feed]
ws_url = "{exchange.ws_url}"
rest_url = "{exchange.rest_url}"
assembly_timeout_s = 2.0
[forecast.skill]
enabled = false
[risk.gate]
rule = 'strength'
long_entry_strength = 0.05
short_entry_strength = 0.05
exit_strength = 0.01
""".replace("'", '"'))


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def bar_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return query(db, "SELECT count(*) FROM equity")[0][0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


async def wait_for_bars(db: Path, n: int, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while bar_count(db) < n:
        assert proc.returncode is None, "the daemon exited early"
        assert time.monotonic() < deadline, f"fewer than {n} bars after {timeout}s"
        await asyncio.sleep(0.05)


async def start_daemon(config: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), *extra, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finish(proc: asyncio.subprocess.Process, timeout: float) -> str:
    """Wait for the daemon to exit (killing it if it overstays); returns its stderr."""
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return err.decode()[-2000:]


def assert_consistent(db: Path) -> None:
    """Every bar is whole (all its rows or none) and equity = cash + Σ qty × mark at every mark."""
    per_bar = defaultdict(int)
    for (bar_ms,) in query(db, "SELECT bar_ms FROM decisions"):
        per_bar[bar_ms] += 1
    equity = query(db, "SELECT bar_ms, cash, equity FROM equity ORDER BY bar_ms")
    assert set(per_bar) == {b for b, _, _ in equity}
    assert all(n == len(SYMBOLS) for n in per_bar.values())
    marked: dict[int, Decimal] = defaultdict(Decimal)
    for bar_ms, q, mark in query(db, "SELECT bar_ms, qty, mark FROM positions"):
        marked[bar_ms] += Decimal(q) * Decimal(mark)
    for bar_ms, cash, eq in equity:
        assert Decimal(eq) == Decimal(cash) + marked[bar_ms]


@pytest.mark.asyncio
async def test_sigterm_stops_cleanly_and_a_restart_resumes_the_account(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + 2000, 1_704_067_200_000, seed=5)
    db = tmp_path / "trades.sqlite"
    config = tmp_path / "config.toml"
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.03, start_index=WINDOW) as exchange:
        write_config(config, exchange, db)
        proc = await start_daemon(config)
        try:
            await wait_for_bars(db, 25, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            err = await finish(proc, timeout=30)
        assert proc.returncode == 0, err
        assert_consistent(db)
        (session,) = query(db, "SELECT session_no, ended_ms, end_reason FROM sessions")
        assert session[0] == 1 and session[1] is not None and session[2] == "signal"
        last_bar, last_cash = query(db, "SELECT bar_ms, cash FROM equity ORDER BY bar_ms DESC LIMIT 1")[0]
        held = dict(query(db, f"SELECT symbol, qty FROM positions WHERE bar_ms = {last_bar}"))

        proc = await start_daemon(config, "--max-bars", "10")
        err = await finish(proc, timeout=60)
        assert proc.returncode == 0, err

    assert_consistent(db)
    sessions = query(db, "SELECT session_no, end_reason FROM sessions ORDER BY session_no")
    assert sessions == [(1, "signal"), (2, "max_bars")]
    later = query(db, f"SELECT bar_ms, cash FROM equity WHERE bar_ms > {last_bar} ORDER BY bar_ms")
    assert len(later) == 10
    # Bars streamed while the daemon was down were not decided; the account carried over unchanged:
    # the first new bar's cash is the old cash plus that bar's fills (orders left open went stale).
    first_bar = later[0][0]
    assert first_bar > last_bar
    flows = Decimal(0)
    for side, q, px, fee in query(db, f"SELECT side, qty, price, fee FROM fills WHERE bar_ms = {first_bar}"):
        n = Decimal(q) * Decimal(px)
        flows += (-n if side == "buy" else n) - Decimal(fee)
    assert Decimal(later[0][1]) == Decimal(last_cash) + flows
    stale = query(db, f"SELECT status, status_reason FROM orders WHERE bar_ms = {last_bar}")
    assert all(status == "cancelled" and "stale" in reason for status, reason in stale)
    filled_now = {s for (s,) in query(db, f"SELECT symbol FROM fills WHERE bar_ms = {first_bar}")}
    assert not filled_now, "an order from before the restart was filled at a later bar's open"
    now_held = dict(query(db, f"SELECT symbol, qty FROM positions WHERE bar_ms = {first_bar}"))
    assert now_held == held
