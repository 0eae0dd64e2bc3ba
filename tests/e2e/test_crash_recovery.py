"""kill -9 the daemon 20 times during a replay and restart it each time: the trade log must end
identical to an uninterrupted run's — the same fills and the same equity to the last unit.

Some kills come from outside at random moments; others are the daemon killing itself
(SIGMA_BOT_KILL_BEFORE_COMMIT) after a bar's fills were applied in memory and before
they were committed.  Bars missed while the daemon was down are fetched through REST and
decided late, in order, so the restarted run makes the decisions the uninterrupted one made.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 32
BARS = 700
START_MS = 1_704_067_200_000
H = 3_600_000
KILLS = 20
SELF_KILLS = 5  # of the KILLS, this many are SIGKILLs between fills and their commit


def write_config(path: Path, exchange: ReplayExchange, db: Path) -> None:
    path.write_text(f"""
[run]
id = "kill"
db = "{db}"
log_level = "WARNING"
[market]
symbols = {SYMBOLS!r}
window = {WINDOW}
[feed]
ws_url = "{exchange.ws_url}"
rest_url = "{exchange.rest_url}"
assembly_timeout_s = 2.0
[recovery]
max_missed_bars = 100000
[forecast.skill]
enabled = false
[risk.gate]
rule = 'strength'
long_entry_strength = 0.05
short_entry_strength = 0.05
exit_strength = 0.01
""".replace("'", '"'))


def sessions_started(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def bars_written(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM equity").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


async def daemon(config: Path, last_bar: int, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config), "--stop-after-bar", str(last_bar),
        cwd=REPO, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


def trade_log(db: Path) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "fills": "SELECT order_id, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, reason FROM fills",
        "equity": "SELECT bar_ms, cash, equity FROM equity",
        "positions": "SELECT bar_ms, symbol, qty, avg_price, mark, margin, liq_price FROM positions",
        "orders": "SELECT order_id, bar_ms, symbol, side, qty, leverage, type, status FROM orders",
        "decisions": "SELECT bar_ms, symbol, action, target_qty, current_qty FROM decisions",
        "forecasts": "SELECT bar_ms, symbol, model, mu, sigma FROM forecasts",
        "risk_state": "SELECT bar_ms, state, peak_equity, coverage_68, coverage_95, outcomes FROM risk_state",
    }
    with sqlite3.connect(db) as conn:
        return {name: sorted(conn.execute(sql).fetchall()) for name, sql in queries.items()}


@pytest.mark.asyncio
async def test_twenty_kill_9s_leave_the_same_trade_log_as_an_uninterrupted_run(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, WINDOW + BARS, START_MS, seed=9)
    last_bar = int(data["BTC/USDT"].open_ms[WINDOW + BARS - 1])

    ref_db, ref_cfg = tmp_path / "ref.sqlite", tmp_path / "ref.toml"
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as exchange:
        write_config(ref_cfg, exchange, ref_db)
        proc = await daemon(ref_cfg, last_bar)
        _, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()[-2000:]

    db, cfg = tmp_path / "killed.sqlite", tmp_path / "killed.toml"
    rng = random.Random(20261123)
    # The first kill is external and comes after the first bar is written: that bar fixes where
    # the run starts, as in the reference.
    rest = ["self"] * SELF_KILLS + ["external"] * (KILLS - SELF_KILLS - 1)
    rng.shuffle(rest)
    kinds = ["external", *rest]

    def env_for(kind: str | None) -> dict[str, str] | None:
        return {"SIGMA_BOT_KILL_BEFORE_COMMIT": str(rng.randint(1, 4))} if kind == "self" else None

    kills = {"self": 0, "external": 0}
    # Paced so that the twenty restarts all happen before the replay's last bar.
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.08, start_index=WINDOW) as exchange:
        write_config(cfg, exchange, db)
        proc = await daemon(cfg, last_bar)
        deadline = time.monotonic() + 60
        while bars_written(db) == 0:
            assert time.monotonic() < deadline and proc.returncode is None
            await asyncio.sleep(0.02)
        for i, kind in enumerate(kinds):
            if kind == "external":
                # Kill a running session, not a process still importing: wait until it has begun.
                while sessions_started(db) < i + 1:
                    assert proc.returncode is None
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                assert proc.returncode is None, "the daemon ended before it was killed"
                proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 60)
            assert proc.returncode == -signal.SIGKILL, f"kill {i} ({kind}): exit code {proc.returncode}"
            kills[kind] += 1
            proc = await daemon(cfg, last_bar, env_for(kinds[i + 1] if i + 1 < len(kinds) else None))
        assert exchange.bars_sent < BARS, "the replay ended before the last restart: pace it slower"
        _, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert kills == {"self": SELF_KILLS, "external": KILLS - SELF_KILLS}

    with sqlite3.connect(db) as conn:
        sessions = conn.execute("SELECT count(*), sum(ended_ms IS NULL) FROM sessions").fetchone()
    assert sessions == (KILLS + 1, KILLS), "every killed session is left open, the last one closed"
    got, want = trade_log(db), trade_log(ref_db)
    assert len(want["equity"]) == BARS and len(want["fills"]) > 50
    for table in want:
        assert got[table] == want[table], f"{table} differs from the uninterrupted run"
