"""``bot status`` against trade logs written through TradeStore, plus outage and rejection rows."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import DataError
from bot.events import EquityMarked, PositionMarked, Side, SubmitOrder
from bot.reporting.status import format_status, load_status
from bot.store.trade_store import BarRecord, TradeStore
from risk.events import RiskStateLogged

H = 3_600_000
M = 60_000
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC
BTC, ETH, XRP = "BTC/USDT", "ETH/USDT", "XRP/USDT"
D = Decimal
CONFIG = '{"market": {"timeframe": "1h"}}'


def bar(bar_ms: int, cash: str, equity: str, positions: tuple[PositionMarked, ...] = (),
        orders: tuple[SubmitOrder, ...] = (), risk: RiskStateLogged | None = None) -> BarRecord:
    return BarRecord(bar_ms=bar_ms, candles=(), forecasts=(), decisions=(), orders=orders, fills=(), cancelled=(),
                     equity=EquityMarked(bar_ms, D(cash), D(equity), positions), risk_state=risk)


def risk(state: str, since: int | None, reason: str) -> RiskStateLogged:
    return RiskStateLogged(state, since, reason, D(10000), 0.68, 0.95, 10)


async def write_two_sessions(path: Path) -> None:
    """Session 1 writes three bars and dies (no end); session 2 writes a fourth and is still running."""
    async with await TradeStore.open(path) as store:
        await store.begin_run("r1", "paper", CONFIG, "cfg", "test", T0)
        for i in range(3):
            assert await store.write_bar("r1", bar(T0 + i * H, "10000", "10000", risk=risk("ACTIVE", None, "start")))
    async with await TradeStore.open(path) as store:
        session, _ = await store.begin_run("r1", "paper", CONFIG, "cfg", "test", T0 + 3 * H + 5 * M)
        assert session == 2
        positions = (
            PositionMarked(BTC, D(2), D(100), D(105), margin=D(70), liq_price=D("66.83417085427135678391959799")),
            PositionMarked(ETH, D(-10), D(20), D(21), margin=D(40)),
            PositionMarked(XRP, D(0), D(0), D("0.5")),   # flat: not an open position
        )
        order = SubmitOrder("o5", ETH, T0 + 3 * H, Side.BUY, D("2.5"), D(3))
        assert await store.write_bar("r1", bar(T0 + 3 * H, "9800", "9800", positions, (order,),
                                               risk("REDUCING", T0 + 2 * H, "drawdown 12.0% >= 10.0%")))
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO outages (run_id, started_ms, ended_ms, last_bar_ms, reason, flattened) "
                         "VALUES (?, ?, ?, ?, ?, ?)", [
                             ("r1", T0 + H + 10 * M, T0 + 3 * H + 10 * M, T0, "no closed bar for 70 min", 0),
                             ("r1", T0 + 4 * H + 10 * M, None, T0 + 3 * H, "websocket closed", 1),
                         ])
        conn.executemany("INSERT INTO rejections (run_id, session_no, source, reason, count, last_ms, example) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", [
                             ("r1", 1, "websocket", "bad json", 99, T0, "old session: not shown"),
                             ("r1", 2, "websocket", "bad json", 5, T0 + 4 * H, "bad json: Expecting value"),
                             ("r1", 2, "websocket", "non-finite price", 2, T0 + 4 * H, "close is NaN"),
                             ("r1", 2, "rest", "misaligned time", 1, T0 + 3 * H, "open 1704070800001"),
                         ])


NOW = T0 + 4 * H + 30 * M   # bar 3 (opened T0+3h) closed at T0+4h: 30 minutes ago


@pytest.mark.asyncio
async def test_status_figures(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    await write_two_sessions(db)
    s = load_status(db, now_ms=NOW)
    assert (s.run_id, s.mode, s.timeframe_ms) == ("r1", "paper", H)
    assert s.last_bar_ms == T0 + 3 * H and s.last_bar_close_ms == T0 + 4 * H
    assert s.bar_age_ms == 30 * M and not s.stale
    assert (s.cash, s.equity) == (D(9800), D(9800))
    assert [(p.symbol, p.qty, p.avg_price, p.mark, p.margin, p.liq_price) for p in s.positions] == [
        (BTC, D(2), D(100), D(105), D(70), D("66.83417085427135678391959799")),
        (ETH, D(-10), D(20), D(21), D(40), None),
    ]
    assert [(o.order_id, o.symbol, o.bar_ms, o.side, o.qty, o.leverage) for o in s.orders] == [
        ("o5", ETH, T0 + 3 * H, "buy", D("2.5"), D(3))]
    assert s.trading is not None
    assert (s.trading.state, s.trading.since_bar_ms, s.trading.reason) == (
        "REDUCING", T0 + 2 * H, "drawdown 12.0% >= 10.0%")
    assert len(s.outages) == 2
    assert s.current_outage is not None and s.current_outage.started_ms == T0 + 4 * H + 10 * M
    assert s.current_outage.flattened
    assert s.outage_total_ms == 2 * H + 20 * M   # the ended one, plus the current one up to now
    assert [(r.source, r.reason, r.count) for r in s.rejections] == [
        ("websocket", "bad json", 5), ("websocket", "non-finite price", 2), ("rest", "misaligned time", 1)]
    assert [(x.session_no, x.ended_ms) for x in s.sessions] == [(1, None), (2, None)]
    assert s.previous_session is not None and s.previous_session.ended_ms is None
    assert s.unclean_sessions == 1


@pytest.mark.asyncio
async def test_status_page(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    await write_two_sessions(db)
    text = format_status(load_status(db, now_ms=NOW))
    assert "Last bar    2024-01-01 03:00:00 UTC (closed 30m 0s ago)" in text
    assert "Equity      9,800.00  cash 9,800.00" in text
    assert "66.8342" in text and "66.83417" not in text   # liquidation price 66.834170854... to 6 significant digits
    assert "o5" in text and "ETH/USDT" in text
    assert "Trading     REDUCING since 2024-01-01 02:00:00 UTC: drawdown 12.0% >= 10.0%" in text
    assert "Outages     2, 2h 20m in all; longest ended one 2h 0m" in text
    assert "NOW       since 2024-01-01 04:10:00 UTC (20m 0s)" in text and "halted to flatten" in text
    assert "Rejected    8 market-data message(s) in session 2" in text
    assert "old session" not in text
    assert "latest #2 started 2024-01-01 03:05:00 UTC, running, or stopped without ending the session" in text
    assert "previous  #1 DIED" in text
    assert "STALE" not in text


@pytest.mark.asyncio
async def test_clean_sessions_and_a_stale_feed(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    async with await TradeStore.open(db) as store:
        for n in (1, 2):
            session, _ = await store.begin_run("r1", "paper", CONFIG, "cfg", "test", T0 + n * M)
            await store.write_bar("r1", bar(T0 + n * H, "10000", "10000"))
            await store.end_session("r1", session, T0 + n * M + 1, "signal")
    s = load_status(db, now_ms=T0 + 10 * H)
    # Old bars of a run whose last session ended cleanly: finished, not stale.
    assert s.finished and not s.stale and s.unclean_sessions == 0 and s.trading is None and not s.outages
    text = format_status(s)
    assert "STALE" not in text and "(closed 7h 0m ago)  finished: the last session ended cleanly" in text
    assert "previous  #1 ended cleanly at 2024-01-01 00:01:00 UTC (signal)" in text
    assert "Positions   none (flat)" in text and "Orders      none open" in text
    assert "Outages     0, 0s in all" in text and "Rejected    0 market-data message(s) in session 2" in text


@pytest.mark.asyncio
async def test_a_running_session_without_new_bars_is_stale_and_one_that_failed_is_stopped(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    await write_two_sessions(db)             # session 2 has no end: a daemon that stopped deciding
    s = load_status(db, now_ms=T0 + 10 * H)
    assert s.stale and not s.stopped and "STALE: no bar decided for over two bar periods" in format_status(s)
    async with await TradeStore.open(db) as store:
        await store.end_session("r1", 2, T0 + 4 * H, "error")
    s = load_status(db, now_ms=T0 + 10 * H)
    assert s.stopped and not s.finished and not s.stale
    assert "stopped: the last session ended with an error" in format_status(s)


@pytest.mark.asyncio
async def test_run_without_bars_and_choice_of_run(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    async with await TradeStore.open(db) as store:
        await store.begin_run("old", "paper", CONFIG, "cfg", "test", T0)
        await store.write_bar("old", bar(T0, "10000", "10000"))
        await store.begin_run("new", "paper", CONFIG, "cfg", "test", T0 + H)
    s = load_status(db, now_ms=T0 + 2 * H)
    assert s.run_id == "new" and s.last_bar_ms is None and s.cash is None
    assert "Last bar    none decided yet" in format_status(s)
    assert load_status(db, "old", now_ms=T0 + 2 * H).last_bar_ms == T0
    with pytest.raises(DataError, match=r"no run 'nope' \(runs here: old, new\)"):
        load_status(db, "nope")


@pytest.mark.asyncio
async def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such trade log"):
        load_status(tmp_path / "missing.sqlite")
    empty = tmp_path / "empty.sqlite"
    async with await TradeStore.open(empty):
        pass
    with pytest.raises(DataError, match="holds no runs yet"):
        load_status(empty)
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(DataError, match="not a trade log"):
        load_status(foreign)
    text = tmp_path / "text.sqlite"
    text.write_text("not a database at all, just text " * 100)
    with pytest.raises(DataError):
        load_status(text)


@pytest.mark.asyncio
async def test_status_does_not_write(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    await write_two_sessions(db)
    before = db.read_bytes()
    load_status(db, now_ms=NOW)
    assert db.read_bytes() == before


@pytest.mark.asyncio
async def test_cli_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.sqlite"
    await write_two_sessions(db)
    assert main(["status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Run 'r1'  mode paper") and "REDUCING" in out
    assert main(["status", "--db", str(db), "--run", "nope"]) == 3
    assert "no run 'nope'" in capsys.readouterr().err
    assert main(["status", "--db", str(tmp_path / "missing.sqlite")]) == 3
    assert "no trade log at" in capsys.readouterr().err
