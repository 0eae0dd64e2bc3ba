"""End to end: the daemon in live mode — candles from the replay exchange, orders to the Binance REST stub.

The --live guard is satisfied (``run.mode = "live"``, credentials in the environment);
ccxt signs every order request and the stub verifies it.  The trade log must then
pass ``bot report``'s reconciliation and its fills must be exactly the stub's trades.
(Restarts against the same stub and file: tests/bot/execution/test_exchange_recovery.py.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

from binance_stub import BinanceSpotStub, StubMarket
from bot.cli import main
from bot.config import Settings
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.reporting.run_report import load_report
from bot.runs.daemon import run_daemon

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 48
BARS = 60
KEY, SECRET = "e2e-key-0123456789", "e2e-secret-abcdef"


def stub_for(data: dict) -> BinanceSpotStub:  # type: ignore[type-arg]
    markets = {"BTC/USDT": StubMarket("BTC", "USDT", tick=D("0.01"), step=D("0.00001")),
               "ETH/USDT": StubMarket("ETH", "USDT", tick=D("0.01"), step=D("0.0001")),
               "XRP/USDT": StubMarket("XRP", "USDT", tick=D("0.0001"), step=D("0.1"))}
    prices = {s: D(str(data[s].close[WINDOW])) for s in SYMBOLS}
    return BinanceSpotStub(markets, prices, {"USDT": D("10000")}, api_key=KEY, api_secret=SECRET,
                           market_fill_parts=2)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_live_daemon_against_replay_and_rest_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOT_API_KEY", KEY)
    monkeypatch.setenv("BOT_API_SECRET", SECRET)
    db = tmp_path / "live.sqlite"
    data = generate_market(SYMBOLS, WINDOW + BARS + 1, 1_704_067_200_000, seed=11)
    async with stub_for(data) as stub:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as replay:
            settings = Settings().with_overrides(
                run={"db": str(db), "id": "live-e2e", "mode": "live"},
                market={"symbols": SYMBOLS, "window": WINDOW},
                feed={"ws_url": replay.ws_url, "rest_url": replay.rest_url, "assembly_timeout_s": 5.0},
                forecast={"skill": {"enabled": False}},
                risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}},
                exchange={"rest_url": stub.rest_url, "sandbox": False, "poll_interval_s": 0.0},
            )
            result = await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=BARS, live=True), timeout=120)
            assert result.stats.bars == BARS
        signed = [p for m, path, p in stub.requests if path == "/api/v3/order" and m == "POST"]
        assert signed and all("signature" in p and p["newClientOrderId"].startswith("sb") for p in signed)

    with sqlite3.connect(db) as conn:
        fills = conn.execute("SELECT trade_id, symbol, side, qty FROM fills WHERE run_id = 'live-e2e'").fetchall()
        modes = conn.execute("SELECT mode FROM runs").fetchall()
        refused = conn.execute("SELECT COUNT(*) FROM orders WHERE status_reason LIKE 'refused:%'").fetchone()[0]
        logged = conn.execute("SELECT COALESCE(SUM(count), 0) FROM rejections WHERE source = 'exchange'").fetchone()[0]
    assert modes == [("live",)]
    assert sorted(t for t, *_ in fills) == sorted(str(t["id"]) for t in stub.trades)   # every trade, once
    for s in SYMBOLS:
        base = s.split("/")[0]
        net = sum((D(q) if side == "buy" else -D(q)) for _, sym, side, q in fills if sym == s)
        assert net == stub.balance(base), s
    assert refused == logged   # each refusal is an order row and a counted rejection

    report = load_report(db, "live-e2e")
    assert report.sessions == 1 and report.trades == len(fills) > 0
    assert all(c.ok for c in report.checks), report.checks
    assert report.cash_end == stub.balance("USDT")
    assert main(["report", "--db", str(db)]) == 0
    assert "Reconciliation" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.asyncio
async def test_live_daemon_on_usdm_futures_against_the_futures_stub(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from binance_usdm_stub import BinanceUsdmStub

    monkeypatch.setenv("BOT_API_KEY", KEY)
    monkeypatch.setenv("BOT_API_SECRET", SECRET)
    db = tmp_path / "usdm.sqlite"
    data = generate_market(SYMBOLS, WINDOW + BARS + 1, 1_704_067_200_000, seed=11)
    markets = {"BTC/USDT": StubMarket("BTC", "USDT", tick=D("0.01"), step=D("0.00001"), min_qty=D("0.00001")),
               "ETH/USDT": StubMarket("ETH", "USDT", tick=D("0.01"), step=D("0.0001"), min_qty=D("0.0001")),
               "XRP/USDT": StubMarket("XRP", "USDT", tick=D("0.0001"), step=D("0.1"), min_qty=D("0.1"))}
    prices = {s: D(str(data[s].close[WINDOW])) for s in SYMBOLS}
    async with BinanceUsdmStub(markets, prices, D("10000"), api_key=KEY, api_secret=SECRET,
                               market_fill_parts=2) as stub:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as replay:
            settings = Settings().with_overrides(
                run={"db": str(db), "id": "usdm-e2e", "mode": "live"},
                market={"symbols": SYMBOLS, "window": WINDOW},
                feed={"ws_url": replay.ws_url, "rest_url": replay.rest_url, "assembly_timeout_s": 5.0},
                forecast={"skill": {"enabled": False}},
                risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}},
                exchange={"rest_url": stub.rest_url, "sandbox": False, "poll_interval_s": 0.0, "market": "usdm"},
            )
            result = await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=BARS, live=True), timeout=120)
            assert result.stats.bars == BARS
        assert stub.leverage_requests and {m for m, _ in stub.leverage_requests} <= {"BTCUSDT", "ETHUSDT", "XRPUSDT"}

    with sqlite3.connect(db) as conn:
        fills = conn.execute("SELECT trade_id, symbol, side, qty FROM fills WHERE run_id = 'usdm-e2e'").fetchall()
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM orders WHERE run_id = 'usdm-e2e' "
                                     "GROUP BY status").fetchall())
    assert set(statuses) == {"filled"}, statuses   # reducing orders need no margin: none refused
    assert sorted(t for t, *_ in fills) == sorted(str(t["id"]) for t in stub.trades)   # every trade, once
    for s in SYMBOLS:
        net = sum((D(q) if side == "buy" else -D(q)) for _, sym, side, q in fills if sym == s)
        assert net == stub.position(s), s
    report = load_report(db, "usdm-e2e")
    assert report.trades == len(fills) > 0
    assert all(c.ok for c in report.checks), report.checks
    assert report.cash_end == stub.wallet - sum((a * e for a, e in stub.positions.values()), D(0))
