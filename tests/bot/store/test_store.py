"""The SQLite trade log against real files: schema, idempotence, atomicity, resume, exactness."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import DataError
from bot.events import Candle, EquityMarked, OrderFilled, PositionMarked, Side, SubmitOrder
from bot.store.trade_store import SCHEMA_VERSION, BarRecord, ResumeState, TradeStore
from risk.events import Decision, RiskStateLogged
from strategies.events import Forecast

H = 3_600_000
T0 = 1_700_000_000_000 // H * H
BTC, ETH = "BTC/USDT", "ETH/USDT"
TABLES = ("runs", "sessions", "candles", "forecasts", "decisions", "orders", "fills", "positions", "equity")


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def row_counts(path: Path) -> dict[str, int]:
    return {t: query(path, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}


def candle(symbol: str, bar_ms: int, close: str) -> Candle:
    px = Decimal(close)
    return Candle(symbol, bar_ms, bar_ms + H - 1, px, px + 1, px - 1, px, Decimal("12.5"))


def bar(bar_ms: int, cash: str, equity: str | None = None, *, positions: tuple[PositionMarked, ...] = (),
        orders: tuple[SubmitOrder, ...] = (), fills: tuple[OrderFilled, ...] = (),
        cancelled: tuple[tuple[str, str], ...] = (), decisions: tuple[Decision, ...] = (),
        closes: dict[str, str] | None = None) -> BarRecord:
    closes = closes or {BTC: "100", ETH: "20"}
    return BarRecord(
        bar_ms=bar_ms,
        candles=tuple(candle(s, bar_ms, c) for s, c in closes.items()),
        forecasts=tuple(Forecast(s, bar_ms, 0.001, 0.01, "baseline") for s in closes),
        decisions=decisions or tuple(Decision(s, bar_ms, "none", Decimal(0), Decimal(0), "weak")
                                     for s in closes),
        orders=orders, fills=fills, cancelled=cancelled,
        equity=EquityMarked(bar_ms, Decimal(cash), Decimal(equity or cash), positions))


async def new_store(path: Path, run_id: str = "r1", config_hash: str = "hash-a") -> TradeStore:
    store = await TradeStore.open(path)
    await store.begin_run(run_id, "paper", '{"run":{}}', config_hash, "test", T0)
    return store


@pytest.mark.asyncio
async def test_fresh_file_gets_the_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "trades.sqlite"
    async with await TradeStore.open(path):
        pass
    tables = {name for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= {"schema_version", *TABLES}
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert query(path, "PRAGMA journal_mode") == [("wal",)]
    async with await TradeStore.open(path):   # reopening an existing log is fine and changes nothing
        pass
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


@pytest.mark.asyncio
async def test_connection_pragmas(tmp_path: Path) -> None:
    async with await TradeStore.open(tmp_path / "t.sqlite") as store:
        db = store._conn()
        pragmas = {name: (await db.execute_fetchall(f"PRAGMA {name}"))[0][0]   # type: ignore[index]
                   for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}


@pytest.mark.asyncio
async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await TradeStore.open(path):
        pass
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(DataError, match=rf"schema version {SCHEMA_VERSION + 1} is newer .*upgrade the bot"):
        await TradeStore.open(path)


@pytest.mark.asyncio
async def test_files_that_are_not_trade_logs_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(DataError, match="not a trade log"):
        await TradeStore.open(other)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(DataError, match="garbage.sqlite"):
        await TradeStore.open(garbage)
    with pytest.raises(DataError, match="cannot open"):
        await TradeStore.open(tmp_path / "no" / "such" / "dir.sqlite")


@pytest.mark.asyncio
async def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "t.sqlite")
    await store.close()
    await store.close()
    with pytest.raises(DataError, match="closed"):
        await store.last_bar_ms("r1")


@pytest.mark.asyncio
async def test_writing_a_bar_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        order = SubmitOrder("o1", BTC, T0, Side.BUY, Decimal("0.5"))
        first = bar(T0, "1000", orders=(order,))
        assert await store.write_bar("r1", first) is True
        counts = row_counts(path)
        assert await store.write_bar("r1", first) is False
        # The same bar with other contents is still "already logged": the first write stands.
        assert await store.write_bar("r1", bar(T0, "999", closes={BTC: "1"})) is False
        assert row_counts(path) == counts
        assert await store.last_bar_ms("r1") == T0
    assert counts == {"runs": 1, "sessions": 1, "candles": 2, "forecasts": 2, "decisions": 2, "orders": 1,
                      "fills": 0, "positions": 0, "equity": 1}
    assert query(path, "SELECT cash FROM equity") == [("1000",)]


@pytest.mark.asyncio
async def test_write_bars_skips_bars_already_logged(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        assert await store.write_bar("r1", bar(T0 + H, "1000"))
        batch = [bar(T0 + i * H, "1000") for i in range(4)]
        assert await store.write_bars("r1", batch) == 3
        assert await store.write_bars("r1", batch) == 0
        assert await store.write_bars("r1", []) == 0
        with pytest.raises(ValueError, match="more than once"):
            await store.write_bars("r1", [bar(T0 + 9 * H, "1"), bar(T0 + 9 * H, "1")])
    assert query(path, "SELECT COUNT(*), MAX(bar_ms) FROM equity") == [(4, T0 + 3 * H)]
    assert query(path, "SELECT COUNT(*) FROM candles") == [(8,)]


@pytest.mark.asyncio
async def test_a_bar_that_fails_midway_leaves_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        assert await store.write_bar("r1", bar(T0, "1000",
                                               orders=(SubmitOrder("o1", BTC, T0, Side.BUY, Decimal(1)),)))
        before = row_counts(path)
        fill = OrderFilled("o1", BTC, T0, T0 + H, Side.BUY, Decimal(1), Decimal(100), Decimal("0.1"))
        # The equity, candle, forecast and order rows go in before the duplicate decision breaks the bar.
        twice = (Decision(BTC, T0 + H, "buy", Decimal(1), Decimal(0), "a"),
                 Decision(BTC, T0 + H, "buy", Decimal(1), Decimal(0), "b"))
        broken = bar(T0 + H, "899.9", "999.9", decisions=twice, fills=(fill,),
                     orders=(SubmitOrder("o2", ETH, T0 + H, Side.SELL, Decimal(3)),))
        with pytest.raises(DataError, match="UNIQUE constraint failed: decisions"):
            await store.write_bar("r1", broken)
        assert row_counts(path) == before
        # A fill of an order nobody logged breaks the foreign key, after the bar's other rows went in.
        ghost = OrderFilled("ghost", ETH, T0, T0 + H, Side.SELL, Decimal(1), Decimal(20), Decimal(0))
        with pytest.raises(DataError, match="FOREIGN KEY"):
            await store.write_bar("r1", bar(T0 + H, "1000", fills=(ghost,)))
        assert row_counts(path) == before
        # Cancelling an order that is not open fails on the status update, the last step of the write.
        with pytest.raises(DataError, match="not open"):
            await store.write_bar("r1", bar(T0 + H, "899.9", fills=(fill,), cancelled=(("o1", "late"),)))
        assert row_counts(path) == before
        assert query(path, "SELECT status FROM orders") == [("open",)]
        # The bar is still unwritten, so its correct version goes in.
        assert await store.write_bar("r1", bar(T0 + H, "899.9", "999.9", fills=(fill,),
                                               positions=(PositionMarked(BTC, Decimal(1), Decimal(100),
                                                                         Decimal(100)),)))
        assert await store.last_bar_ms("r1") == T0 + H
    assert query(path, "SELECT status, updated_bar_ms FROM orders") == [("filled", T0 + H)]


@pytest.mark.asyncio
async def test_events_of_another_bar_are_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        wrong = bar(T0, "1000", orders=(SubmitOrder("o1", BTC, T0 - H, Side.BUY, Decimal(1)),))
        with pytest.raises(ValueError, match="order o1"):
            await store.write_bar("r1", wrong)
        early = OrderFilled("o0", BTC, T0, T0, Side.BUY, Decimal(1), Decimal(1), Decimal(0))
        with pytest.raises(ValueError, match="decided at"):
            await store.write_bar("r1", bar(T0, "1000", fills=(early,)))
        assert await store.last_bar_ms("r1") is None


@pytest.mark.asyncio
async def test_bars_of_an_unknown_run_are_refused(tmp_path: Path) -> None:
    async with await TradeStore.open(tmp_path / "t.sqlite") as store:
        with pytest.raises(DataError, match="FOREIGN KEY"):
            await store.write_bar("nobody", bar(T0, "1"))


@pytest.mark.asyncio
async def test_resume_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    store = await TradeStore.open(path)
    session, resume = await store.begin_run("r1", "paper", "{}", "hash-a", "v1", T0)
    assert (session, resume) == (1, None)
    o1 = SubmitOrder("o1", BTC, T0, Side.BUY, Decimal("0.25"))
    o2 = SubmitOrder("o2", ETH, T0, Side.SELL, Decimal("3"))
    await store.write_bar("r1", bar(T0, "10000", orders=(o1, o2)))
    f1 = OrderFilled("o1", BTC, T0, T0 + H, Side.BUY, Decimal("0.25"), Decimal("101.5"), Decimal("0.0254"))
    o3 = SubmitOrder("o3", ETH, T0 + H, Side.BUY, Decimal("1.5"))
    positions = (PositionMarked(BTC, Decimal("0.25"), Decimal("101.5"), Decimal("102.25"), Decimal("5.075"),
                                Decimal("81.6")),
                 PositionMarked(ETH, Decimal("0"), Decimal("0"), Decimal("20.5")))
    risk = RiskStateLogged("REDUCING", T0 + H, "drawdown 12% >= reduce 10%", Decimal("11000.5"), 0.61, 0.93, 7,
                           ((BTC, T0 + H),))
    await store.write_bar("r1", replace(bar(T0 + H, "9974.5996", "10000.1621", positions=positions, fills=(f1,),
                                            orders=(o3,), cancelled=(("o2", "risk: sigma above limit"),)),
                                        risk_state=risk))
    await store.end_session("r1", session, T0 + 2 * H, "stopped")
    await store.close()

    async with await TradeStore.open(path) as again:
        session, resume = await again.begin_run("r1", "paper", "{}", "hash-a", "v2", T0 + 3 * H)
        assert await again.resume_state("r1") == resume
    assert session == 2
    assert resume == ResumeState(
        last_bar_ms=T0 + H, cash=Decimal("9974.5996"),
        positions={BTC: (Decimal("0.25"), Decimal("101.5"))},
        marks={BTC: Decimal("102.25"), ETH: Decimal("20.5")},
        open_orders=(o3,), margins={BTC: Decimal("5.075")}, risk_state=risk,
        forecasts=(Forecast(BTC, T0 + H, 0.001, 0.01, "baseline"), Forecast(ETH, T0 + H, 0.001, 0.01, "baseline")))
    assert query(path, "SELECT session_no, started_ms, ended_ms, end_reason, code_version FROM sessions") == [
        (1, T0, T0 + 2 * H, "stopped", "v1"), (2, T0 + 3 * H, None, None, "v2")]
    assert query(path, "SELECT order_id, status, status_reason, updated_bar_ms FROM orders ORDER BY order_id") == [
        ("o1", "filled", None, T0 + H), ("o2", "cancelled", "risk: sigma above limit", T0 + H),
        ("o3", "open", None, None)]


@pytest.mark.asyncio
async def test_a_run_keeps_its_config(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path, config_hash="aaaa1111") as store:
        with pytest.raises(DataError, match=r"aaaa1111.*bbbb2222.*new \[run\] id"):
            await store.begin_run("r1", "paper", "{}", "bbbb2222", "test", T0 + H)
        # The refused start left no session behind; the other run id is free to use the new config.
        assert (await store.begin_run("r2", "paper", "{}", "bbbb2222", "test", T0 + H))[0] == 1
    assert query(path, "SELECT run_id, session_no FROM sessions ORDER BY run_id") == [("r1", 1), ("r2", 1)]


@pytest.mark.asyncio
async def test_end_session_of_an_unknown_session(tmp_path: Path) -> None:
    async with await new_store(tmp_path / "t.sqlite") as store:
        with pytest.raises(DataError, match="no session 7"):
            await store.end_session("r1", 7, T0, "stopped")


@pytest.mark.asyncio
async def test_concurrent_writers_do_not_interleave_transactions(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        results = await asyncio.gather(*(store.write_bar("r1", bar(T0 + i * H, str(i))) for i in range(20)))
    assert all(results)
    assert query(path, "SELECT COUNT(*) FROM equity") == [(20,)]


# Finite decimals of many shapes: exponents, trailing zeros, signs, long mantissas.
money = st.decimals(allow_nan=False, allow_infinity=False) | st.decimals(places=8, allow_nan=False,
                                                                           allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(money, min_size=1, max_size=12))
def test_decimals_round_trip_exactly(values: list[Decimal]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.sqlite"
        asyncio.run(_write_decimals(path, values))
        stored = query(path, "SELECT qty, avg_price, mark FROM positions ORDER BY symbol")
        cash = query(path, "SELECT cash, equity FROM equity")
    assert [tuple(Decimal(x) for x in row) for row in stored] == [(v, v, v) for v in values]
    # Not only equal but the same digits: Decimal("1.10") stays "1.10" and -0 stays -0.
    assert [row[0] for row in stored] == [str(v) for v in values]
    assert cash == [(str(values[0]), str(values[-1]))]


async def _write_decimals(path: Path, values: list[Decimal]) -> None:
    async with await new_store(path) as store:
        positions = tuple(PositionMarked(f"S{i:02d}/USDT", v, v, v) for i, v in enumerate(values))
        record = BarRecord(T0, (), (), (), (), (), (), EquityMarked(T0, values[0], values[-1], positions))
        assert await store.write_bar("r1", record)
        state = await store.resume_state("r1")
    assert state is not None and state.cash == values[0] and str(state.cash) == str(values[0])
    assert state.marks == {p.symbol: p.mark for p in positions}


@pytest.mark.asyncio
async def test_bar_timings_keep_the_first_and_an_older_log_gains_the_table(tmp_path: Path) -> None:
    from bot.store.rows import BarTiming

    path = tmp_path / "t.sqlite"
    async with await new_store(path) as store:
        first = BarTiming(T0, T0 + H, T0 + H + 120, T0 + H + 180, T0 + H + 250, 2, False)
        await store.record_timing("r1", first)
        await store.record_timing("r1", first._replace(committed_ms=T0 + H + 999))   # the same bar again
    assert query(path, "SELECT bar_ms, committed_ms, late FROM bar_timings") == [(T0, T0 + H + 250, 0)]
    with closing(sqlite3.connect(path)) as conn:   # a version-3 log written before bar_timings existed
        conn.execute("DROP TABLE bar_timings")
        conn.commit()
    async with await TradeStore.open(path) as store:
        await store.record_timing("r1", first)
    assert query(path, "SELECT COUNT(*) FROM bar_timings") == [(1,)]
