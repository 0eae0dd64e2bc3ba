"""The backtest's trade-log writer process: the same log as a direct write, a failure stops the run with a
whole-bar prefix in the log, and a killed backtest resumes to the same log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import DataError
from bot.feeds.replay.csvdata import write_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import YIELD_EVERY, run_backtest
from bot.store.trade_store import TradeStore
from bot.store.writer import BarWriter

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
START_MS = 1_704_067_200_000
H = 3_600_000
RISK = {"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}}
TABLES = ("candles", "forecasts", "decisions", "orders", "fills", "equity", "positions", "risk_state",
          "var_estimates", "deleverage_steps", "funding")


def settings(db: Path) -> Settings:
    return Settings().with_overrides(run={"db": str(db), "id": "bt"}, market={"symbols": SYMBOLS, "window": 64},
                                     risk=RISK, forecast={"skill": {"enabled": False}})


def table(db: Path, name: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2, 3, 4").fetchall()


def assert_same_log(a: Path, b: Path) -> None:
    for name in TABLES:
        assert table(a, name) == table(b, name), name


def test_the_writer_process_writes_the_log_a_direct_write_does(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, 400, START_MS, seed=8)
    behind = asyncio.run(run_backtest(settings(tmp_path / "behind.sqlite"), data, commit_every=50))
    direct = asyncio.run(run_backtest(settings(tmp_path / "direct.sqlite"), data, commit_every=50,
                                      write_behind=False))
    assert behind.bars == direct.bars == 400 - 64 and behind.stats.fills == direct.stats.fills >= 5
    assert len(table(tmp_path / "behind.sqlite", "candles")) == 3 * (400 - 64)
    assert_same_log(tmp_path / "behind.sqlite", tmp_path / "direct.sqlite")


def test_a_failed_commit_stops_the_backtest_with_whole_bars_logged_and_a_rerun_finishes(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, 400, START_MS, seed=8)
    asyncio.run(run_backtest(settings(tmp_path / "whole.sqlite"), data, commit_every=50))
    db = tmp_path / "parts.sqlite"
    bad_bar = START_MS + 200 * H    # in the 3rd batch of 50 (bars 64..113, 114..163, 164..213)

    async def make_log() -> None:
        async with await TradeStore.open(db):
            pass
    asyncio.run(make_log())
    with sqlite3.connect(db) as conn:   # a disk that refuses writes from bar 200 on
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON candles WHEN NEW.bar_ms >= {bad_bar} "
                     "BEGIN SELECT RAISE(ABORT, 'disk refused the write'); END")
    with pytest.raises(DataError, match="not writable"):
        asyncio.run(run_backtest(settings(db), data, commit_every=50))
    equity = [r[1] for r in table(db, "equity")]
    assert equity == [START_MS + k * H for k in range(64, 164)]        # two whole batches, nothing after
    assert {r[2] for r in table(db, "candles")} == set(equity)        # every row of exactly those bars
    assert {r[1] for r in table(db, "decisions")} == set(equity)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER refuse")
    again = asyncio.run(run_backtest(settings(db), data, commit_every=50))
    assert again.resumed_from_bar_ms == START_MS + 163 * H
    assert_same_log(tmp_path / "whole.sqlite", db)


def test_a_writer_that_cannot_open_the_log_is_an_error_at_start(tmp_path: Path) -> None:
    async def go() -> None:
        async with await TradeStore.open(tmp_path / "log.sqlite") as store:
            (tmp_path / "log.sqlite").unlink()
            (tmp_path / "log.sqlite").mkdir()     # the child cannot open a folder as its database
            with pytest.raises(DataError, match="writer did not start"):
                await BarWriter(store).start()
    asyncio.run(go())


BARS = 6000


def _cli_case(tmp_path: Path, bars: int = BARS) -> list[str]:
    """The ``bot backtest`` command line of a 3-symbol synthetic market, committing every 20 bars."""
    data = generate_market(SYMBOLS, bars, START_MS, seed=8)
    folder = tmp_path / "data"
    folder.mkdir()
    for sym, series in data.items():
        write_ohlcv_csv(folder / f"{sym.replace('/', '')}-1h.csv", series)
    config = tmp_path / "config.toml"
    config.write_text('[market]\nsymbols = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]\nwindow = 64\n'
                      '[forecast.skill]\nenabled = false\n[risk.gate]\nrule = "strength"\nlong_entry_strength = 0.05\nshort_entry_strength = 0.05\nexit_strength = 0.01\n')
    cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(config), "--data", str(folder),
           "--run-id", "bt", "--commit-every", "20"]
    subprocess.run(cmd + ["--db", str(tmp_path / "whole.sqlite")], check=True, capture_output=True, timeout=600)
    return cmd


def _start_and_wait(cmd: list[str], db: Path, bars: int) -> subprocess.Popen[str]:
    """Start ``cmd`` in its own process group (as a terminal runs it) and wait until ``bars`` are logged."""
    proc = subprocess.Popen(cmd + ["--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and _logged_bars(db) < bars and proc.poll() is None:
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_a_killed_backtest_leaves_whole_bars_and_resumes_to_the_same_log(tmp_path: Path) -> None:
    cmd = _cli_case(tmp_path)
    db = tmp_path / "killed.sqlite"
    proc = _start_and_wait(cmd, db, 200)
    os.kill(proc.pid, signal.SIGKILL)   # the backtest only: its writer is left to notice
    proc.communicate(timeout=60)
    logged = _logged_bars(db)
    assert 200 <= logged < BARS - 64, "the kill should land mid-run"
    time.sleep(1.0)   # the writer finishes the batch it holds, then exits at the end of the pipe
    settled = _logged_bars(db)
    assert settled % 20 == 0 or settled == BARS - 64                  # whole batches only
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT bar_ms) FROM candles").fetchone()[0] == settled
    subprocess.run(cmd + ["--db", str(db)], check=True, capture_output=True, timeout=600)
    assert_same_log(tmp_path / "whole.sqlite", db)


PAUSE_AT = 1010   # not a multiple of --commit-every 20: at the pause the engine holds 10 bars not yet handed over


@pytest.mark.slow
def test_ctrl_c_commits_every_decided_bar_even_though_the_writer_gets_it_too(tmp_path: Path) -> None:
    cmd = _cli_case(tmp_path)
    db = tmp_path / "interrupted.sqlite"
    # The backtest waits at a known bar until the signal has come (SIGMA_BOT_BACKTEST_PAUSE_AT): however
    # loaded the machine, the signal lands mid-run, never after the run has finished.
    proc = subprocess.Popen(cmd + ["--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "SIGMA_BOT_BACKTEST_PAUSE_AT": str(PAUSE_AT)})
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"paused before decided bar {PAUSE_AT}"):
            break
    else:
        raise AssertionError(f"the backtest never paused: {''.join(seen)[-2000:]}")
    os.killpg(proc.pid, signal.SIGINT)   # as Ctrl-C in a terminal: the backtest and its writer
    logged_then = _logged_bars(db)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted: the decided bars are committed" in out
    decided = int(re.search(r"decided (\d+) bars", out).group(1))     # type: ignore[union-attr]
    assert decided == PAUSE_AT
    # The last 10 decided bars reached the writer only after the signal, and it wrote them before going.
    assert logged_then <= PAUSE_AT - 10 and _logged_bars(db) == decided
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT end_reason FROM sessions").fetchall() == [("signal",)]
        assert conn.execute("SELECT COUNT(DISTINCT bar_ms) FROM decisions").fetchone()[0] == decided
    subprocess.run(cmd + ["--db", str(db)], check=True, capture_output=True, timeout=600)
    assert_same_log(tmp_path / "whole.sqlite", db)


def test_ctrl_c_stops_a_backtest_within_a_few_bars(tmp_path: Path) -> None:
    """The decision loop yields to the event loop, so a stop set mid-run ends it within YIELD_EVERY bars."""
    data = generate_market(SYMBOLS, 1000, START_MS, seed=8)
    stop = asyncio.Event()

    async def go() -> object:
        async def before_bar(k: int, t: int) -> None:
            if k == 100:   # as the signal handler would, from a callback the loop runs between bars
                asyncio.get_running_loop().call_soon(stop.set)
        return await run_backtest(settings(tmp_path / "stop.sqlite"), data, commit_every=50, stop=stop,
                                  before_bar=before_bar)
    result = asyncio.run(go())
    assert result.stopped and 100 < result.bars <= 100 + YIELD_EVERY + 1   # type: ignore[attr-defined]


def _logged_bars(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0])
    except sqlite3.OperationalError:   # not created yet
        return 0
