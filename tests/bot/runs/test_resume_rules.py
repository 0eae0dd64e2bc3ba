"""Resume rules: a run keeps its config (but not the path of its trade log), the refusal says how this
command starts a new run, and a backtest resumed with another range is refused with the reason."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.models import parse_day
from bot.config import Settings
from bot.errors import ConfigError, DataError
from bot.feeds.replay.csvdata import Series, write_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import run_backtest
from bot.store.trade_store import TradeStore

REPO = Path(__file__).resolve().parents[3]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START_MS = 1_704_067_200_000   # 2024-01-01 00:00 UTC
T0 = START_MS


def settings(db: Path, **run: object) -> Settings:
    return Settings().with_overrides(run={"db": str(db), "id": "r", **run}, market={"symbols": SYMBOLS, "window": 64})


async def begin(s: Settings, config_hash: str | None = None) -> None:
    async with await TradeStore.open(s.run.db) as store:
        await store.begin_run(s.run.id, "paper", s.to_json(), config_hash or s.config_hash, "test", T0)


def test_a_moved_or_copied_trade_log_resumes(tmp_path: Path) -> None:
    asyncio.run(begin(settings(tmp_path / "a.sqlite")))
    shutil.copy(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    moved = settings(tmp_path / "b.sqlite", log_level="DEBUG", log_file=str(tmp_path / "bot.log"))
    assert moved.config_hash == settings(tmp_path / "a.sqlite").config_hash
    asyncio.run(begin(moved))   # no "changed: run.db"
    with sqlite3.connect(tmp_path / "b.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone() == (2,)


def test_a_run_stored_with_the_old_hash_resumes_from_another_path(tmp_path: Path) -> None:
    """Runs started before run.db left the hash stored a hash of every key: the keys are compared then."""
    first = settings(tmp_path / "a.sqlite")
    asyncio.run(begin(first, hashlib.sha256(first.to_json().encode()).hexdigest()[:16]))
    shutil.copy(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    asyncio.run(begin(settings(tmp_path / "b.sqlite")))
    changed = settings(tmp_path / "b.sqlite").with_overrides(paper={"taker_fee_bps": "5"})
    with pytest.raises(DataError, match=r"changed: paper\.taker_fee_bps\)"):
        asyncio.run(begin(changed))


def test_the_refusal_names_a_config_key_for_bot_run(tmp_path: Path) -> None:
    asyncio.run(begin(settings(tmp_path / "a.sqlite")))
    with pytest.raises(DataError, match=r"pick a new \[run\] id in config\.toml"):
        asyncio.run(begin(settings(tmp_path / "a.sqlite").with_overrides(paper={"taker_fee_bps": "5"})))


def market() -> dict[str, Series]:
    return generate_market(SYMBOLS, 400, START_MS, seed=8)   # 2024-01-01 .. 2024-01-17


def test_the_refusal_names_run_id_for_a_backtest(tmp_path: Path) -> None:
    data = market()
    asyncio.run(run_backtest(settings(tmp_path / "bt.sqlite"), data, end_ms=parse_day("2024-01-06")))
    changed = settings(tmp_path / "bt.sqlite").with_overrides(paper={"taker_fee_bps": "5"})
    with pytest.raises(DataError, match="changed: paper.taker_fee_bps") as err:
        asyncio.run(run_backtest(changed, data))
    assert "pass a new --run" in str(err.value) and "[run] id" not in str(err.value)


def bars_logged(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [b for (b,) in conn.execute("SELECT bar_ms FROM equity ORDER BY bar_ms")]


def test_a_backtest_resumed_with_another_range_is_refused(tmp_path: Path) -> None:
    data, db = market(), tmp_path / "bt.sqlite"
    first = asyncio.run(run_backtest(settings(db), data, parse_day("2024-01-05"), parse_day("2024-01-10")))
    assert first.bars == 5 * 24
    logged = bars_logged(db)
    with pytest.raises(ConfigError, match="keeps its start"):          # another --from
        asyncio.run(run_backtest(settings(db), data, parse_day("2024-01-06"), parse_day("2024-01-12")))
    with pytest.raises(ConfigError, match="keeps its start"):          # no --from: the data's first bars
        asyncio.run(run_backtest(settings(db), data, None, parse_day("2024-01-12")))
    with pytest.raises(ConfigError, match="not cut short"):            # an earlier --to
        asyncio.run(run_backtest(settings(db), data, parse_day("2024-01-05"), parse_day("2024-01-08")))
    assert bars_logged(db) == logged
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone() == (1,)   # refused before a session
    again = asyncio.run(run_backtest(settings(db), data, parse_day("2024-01-05"), parse_day("2024-01-10")))
    assert again.bars == 0 and again.logged_before == (logged[0], logged[-1])
    longer = asyncio.run(run_backtest(settings(db), data, parse_day("2024-01-05"), parse_day("2024-01-12")))
    assert longer.bars == 2 * 24 and longer.resumed_from_bar_ms == logged[-1]


def test_the_backtest_command_says_what_was_resumed(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for sym, series in market().items():
        write_ohlcv_csv(folder / f"{sym.replace('/', '')}-1h.csv", series)
    cmd = [sys.executable, "-m", "bot", "backtest", "--data", str(folder), "--symbols", *SYMBOLS,
           "--db", str(tmp_path / "bt.sqlite"), "--from", "2024-01-05", "--to", "2024-01-10"]

    def bot(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd + list(extra), cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={"PATH": "", "PYTHONPATH": str(REPO)})
    assert bot().returncode == 0   # market.window 128: the first bar decided is 2024-01-06 08:00
    same = bot()
    assert same.returncode == 0, same.stderr
    assert ("resumed run 'backtest': bars 2024-01-06 08:00 UTC..2024-01-09 23:00 UTC were already in the log; "
            "every bar asked for is there, so nothing is left to decide") in same.stdout
    shorter = bot("--to", "2024-01-08")
    assert shorter.returncode == 2 and "not cut short" in shorter.stderr and "Traceback" not in shorter.stderr
    more = bot("--to", "2024-01-11")
    assert more.returncode == 0 and "the bars after them follow" in more.stdout and "decided 24 bars" in more.stdout
