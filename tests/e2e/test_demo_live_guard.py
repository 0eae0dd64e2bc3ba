"""``bot demo`` with a live config, credentials in the environment and no ``--live`` is paper by
construction: nothing reaches the exchange stub configured as ``exchange.rest_url`` (real HTTP on
127.0.0.1), and the trade log says paper."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from binance_stub import BinanceSpotStub, StubMarket

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "demo-key-0123456789", "demo-secret-abcdef"


@pytest.mark.slow
@pytest.mark.asyncio
async def test_demo_with_a_live_config_sends_nothing_to_the_exchange(tmp_path: Path) -> None:
    markets = {"BTC/USDT": StubMarket("BTC", "USDT", tick=D("0.01"), step=D("0.00001")),
               "ETH/USDT": StubMarket("ETH", "USDT", tick=D("0.01"), step=D("0.0001"))}
    async with BinanceSpotStub(markets, {"BTC/USDT": D("40000"), "ETH/USDT": D("2000")}, {"USDT": D("10000")},
                               api_key=KEY, api_secret=SECRET) as stub:
        cfg = tmp_path / "live.toml"
        cfg.write_text(f"""
[run]
mode = "live"
[market]
symbols = ["BTC/USDT", "ETH/USDT"]
window = 32
[risk.gate]
long_entry_strength = 0.01
short_entry_strength = 0.01
exit_strength = 0.0
[exchange]
rest_url = "{stub.rest_url}"
sandbox = false
""")
        db = tmp_path / "demo.sqlite"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "demo", "--bars", "30", "--config", str(cfg), "--db", str(db),
            cwd=REPO, env={**os.environ, "BOT_API_KEY": KEY, "BOT_API_SECRET": SECRET},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert stub.requests == [], stub.requests[:3]   # not one request, signed or not
    assert "paper trading only; run.mode 'live' in the config is ignored" in out.decode()
    assert "Traceback" not in err.decode()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT mode FROM runs").fetchall() == [("paper",)]
        assert conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 30   # it ran every bar, on paper
