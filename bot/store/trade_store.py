"""The SQLite trade log: the audit trail of every run, bar by bar.

One :class:`TradeStore` owns one aiosqlite connection (its own worker thread,
so SQLite never blocks the event loop).  Each bar is written in one
transaction, so a crash leaves either the whole bar or none of it, and writing
a bar that is already logged is a no-op.  :meth:`TradeStore.begin_run` hands
back what a restart needs to carry on (cash, positions, marks, open orders).

The schema below is a public interface: people query this file.  Change it
only with a new :data:`SCHEMA_VERSION` and a migration.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.config import config_changes
from bot.errors import DataError
from bot.events import Side, SubmitOrder
from bot.store.files import check_schema_version, check_trade_log_file
from bot.store.models import COLUMNS as MODEL_COLUMNS
from bot.store.models import SELECT_MODELS, ModelVersion, insert_statement
from bot.store.models import from_row as model_from_row
from bot.store.rejections import RejectionCount
from bot.store.rows import (
    FORECAST_COLUMNS,
    FORECAST_ROWS,
    INSERTS,
    STATUS_UPDATES,
    UPSERT_REJECTION,
    BarRecord,
    BarRows,
    BarTiming,
    bar_rows,
    check_unique_bars,
    forecast_from_row,
    rejection_row,
    with_state_text,
)
from bot.store.schema import (
    COMMANDS_DDL,
    INSERT_TIMING,
    MARK_COMMAND_TAKEN,
    MIGRATE_1_TO_2,
    MIGRATE_2_TO_3,
    MIGRATE_3_TO_4,
    PENDING_COMMANDS,
    SCHEMA,
    SCHEMA_VERSION,
    TIMINGS_DDL,
)
from risk.events import RiskStateLogged
from strategies.events import Forecast

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
NEW_RUN_HINT = "pick a new [run] id in config.toml"   # bot run; a backtest names its --run


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a restarted run carries on from: the account as of its last written bar."""

    last_bar_ms: int
    cash: Decimal
    positions: dict[str, tuple[Decimal, Decimal]]   # symbol -> (qty, avg_price), nonzero only
    marks: dict[str, Decimal]                       # symbol -> mark of every position row of the last bar
    open_orders: tuple[SubmitOrder, ...]
    margins: dict[str, Decimal] = field(default_factory=dict)   # symbol -> isolated margin, nonzero positions
    risk_state: RiskStateLogged | None = None       # the trading state after the last bar
    forecasts: tuple[Forecast, ...] = ()            # each symbol's latest (scored at the next bar if made at the last)


class TradeStore:
    """The trade log of one SQLite file, behind one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db: aiosqlite.Connection | None = db
        self._path = path
        # One connection means one transaction at a time; the lock keeps coroutines from interleaving in it.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> TradeStore:
        """Open (creating if new) the trade log at ``path``; DataError if it is not one this code can use."""
        path = Path(path)
        # Checked before aiosqlite connects: a failed connect leaves its worker to resolve a future on a loop
        # that may be closed by then (omnilib/aiosqlite#241, fix pending in #389); and nothing (not even
        # the switch to WAL) may be written to a file before it is known to be a trade log.
        await asyncio.to_thread(check_trade_log_file, path)
        try:
            # isolation_level=None: no implicit transactions; the store says BEGIN and COMMIT itself.
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataError(f"{path}: cannot open the trade log: {exc}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")   # a committed fill must survive a power cut
            await db.execute("PRAGMA foreign_keys = ON")
            await _ensure_schema(db, path)
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise DataError(f"{path}: cannot use the trade log: {exc}") from exc
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def __aenter__(self) -> TradeStore:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def path(self) -> Path:
        return self._path

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise DataError(f"{self._path}: the trade log is closed")
        return self._db

    async def begin_run(self, run_id: str, mode: str, config_json: str, config_hash: str,
                        code_version: str, now_ms: int, *, new_run_hint: str = NEW_RUN_HINT,
                        ) -> tuple[int, ResumeState | None]:
        """Create or resume ``run_id`` and open a new session; return its number and the state to resume.

        ``new_run_hint`` tells the operator, when the config changed, how this command starts a new run.
        """
        db = self._conn()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                rows = list(await db.execute_fetchall(
                    "SELECT config_hash, config_json FROM runs WHERE run_id = ?", (run_id,)))
                changed = config_changes(rows[0][1], config_json) if rows and rows[0][0] != config_hash else []
                if rows and rows[0][0] != config_hash and not changed:
                    log.info("run %s: its config is unchanged; keys added since it started take their "
                             "defaults", run_id)
                if not rows:
                    await db.execute(
                        "INSERT INTO runs (run_id, created_ms, mode, config_json, config_hash, code_version) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (run_id, now_ms, mode, config_json, config_hash, code_version))
                elif changed:
                    raise DataError(
                        f"run {run_id!r} in {self._path} was started with config hash {rows[0][0]}, but the "
                        f"current config hashes to {config_hash} (changed: {', '.join(changed[:8])}"
                        f"{' ...' if len(changed) > 8 else ''}); a run keeps one config, so {new_run_hint} "
                        f"(or restore the run's config) and start again")
                (last,) = await db.execute_fetchall(
                    "SELECT MAX(session_no), SUM(ended_ms IS NULL) FROM sessions WHERE run_id = ?", (run_id,))
                session_no = (last[0] or 0) + 1
                if last[1]:
                    log.warning("run %s: %s earlier session(s) did not end cleanly", run_id, last[1])
                await db.execute(
                    "INSERT INTO sessions (run_id, session_no, started_ms, code_version) VALUES (?, ?, ?, ?)",
                    (run_id, session_no, now_ms, code_version))
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await _rollback(db)
                raise DataError(f"{self._path}: cannot start run {run_id!r} in the trade log: {exc}") from exc
            except BaseException:
                await _rollback(db)
                raise
            resume = await self._resume_state(db, run_id)
        log.info("run %s: session %d started (%s)", run_id, session_no,
                 "new run" if not rows else "resuming" if resume else "no bar written yet")
        return session_no, resume

    async def end_session(self, run_id: str, session_no: int, now_ms: int, reason: str) -> None:
        """Record that session ``session_no`` of ``run_id`` ended, and why."""
        db = self._conn()
        async with self._lock:
            cursor = await db.execute(
                "UPDATE sessions SET ended_ms = ?, end_reason = ? WHERE run_id = ? AND session_no = ?",
                (now_ms, reason, run_id, session_no))
        if cursor.rowcount != 1:
            raise DataError(f"{self._path}: run {run_id!r} has no session {session_no}")

    async def write_bar(self, run_id: str, record: BarRecord) -> bool:
        """Write every row of one bar in one transaction; False if the bar was already logged."""
        return await self.write_bars(run_id, (record,)) == 1

    async def write_bars(self, run_id: str, records: Sequence[BarRecord]) -> int:
        """Write several bars in one transaction (a backtest's batch); return how many were new.

        Bars already logged are skipped, the rest are written whole or, on an error, not at all.
        """
        check_unique_bars(run_id, records)
        return await self.write_rows(run_id, [bar_rows(run_id, r) for r in records])

    async def write_rows(self, run_id: str, batch: Sequence[BarRows]) -> int:
        """:meth:`write_bars` of bars already turned into rows (:func:`bar_rows`)."""
        if not batch:
            return 0
        bars = [b.bar_ms for b in batch]
        db = self._conn()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                # Equity rows first: the ones that go in say which bars are new; the rest are already logged.
                new: set[int] = set()
                for i in range(0, len(batch), _EQUITY_CHUNK):
                    chunk = batch[i:i + _EQUITY_CHUNK]
                    params = [v for b in chunk for v in (run_id, b.bar_ms, b.cash, b.equity)]
                    new.update(b for (b,) in await db.execute_fetchall(_insert_equity_sql(len(chunk)), params))
                if not new:
                    await db.execute("ROLLBACK")
                    log.debug("run %s: bars %s already logged; not written again", run_id, bars)
                    return 0
                fresh = [b for b in batch if b.bar_ms in new]
                # The bars are new, so these inserts are plain: a clash is a bug, and it undoes the whole batch.
                for k, sql in enumerate(INSERTS):
                    rows = [row for b in fresh for row in b.inserts[k]]
                    if rows:
                        await db.executemany(sql, with_state_text(rows) if k == FORECAST_ROWS else rows)
                for k, (sql, status) in enumerate(STATUS_UPDATES):
                    rows = [row for b in fresh for row in b.status[k]]
                    if rows and (await db.executemany(sql, rows)).rowcount != len(rows):
                        raise DataError(f"{_bars_text(bars)} of run {run_id!r} not written: an order marked "
                                        f"{status} is not open in {self._path}")
                # A held bar retried after a later one took the same command: the first write wins.
                taken = [row for b in fresh for row in b.commands]
                if taken:
                    await db.executemany(MARK_COMMAND_TAKEN, taken)
                # The models table changes with the bar that first uses a version (bot/store/models.py).
                for b in fresh:
                    for sql, params in b.models:
                        await db.execute(sql, params)
                await db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                await _rollback(db)
                raise DataError(f"{_bars_text(bars)} of run {run_id!r} not written to {self._path}: {exc} "
                                f"(is the run begun, is every row unique, does every fill name a logged "
                                f"order?)") from exc
            except BaseException:
                await _rollback(db)
                raise
        return len(new)

    async def record_outage(self, run_id: str, started_ms: int, ended_ms: int | None, last_bar_ms: int | None,
                            reason: str, flattened: bool) -> None:
        """Record a feed outage (``ended_ms`` None while it lasts) or a skip of missed bars."""
        await self._execute(
            "INSERT INTO outages (run_id, started_ms, ended_ms, last_bar_ms, reason, flattened) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (run_id, started_ms, ended_ms, last_bar_ms, reason, int(flattened)))

    async def end_outage(self, run_id: str, started_ms: int, ended_ms: int) -> None:
        await self._execute("UPDATE outages SET ended_ms = ? WHERE run_id = ? AND started_ms = ?",
                            (ended_ms, run_id, started_ms))

    async def record_timing(self, run_id: str, timing: BarTiming) -> None:
        """When a live bar arrived and was committed (after its own transaction; a bar logged twice keeps
        the first)."""
        await self._execute(INSERT_TIMING, (run_id, *timing))

    async def record_rejections(self, run_id: str, session_no: int, source: str,
                                counts: Mapping[str, tuple[int, str]], now_ms: int) -> None:
        """Set this session's rejection counts per reason (``{reason: (count, latest example)}``)."""
        rows = [(run_id, session_no, source, reason, n, now_ms, example[:500])
                for reason, (n, example) in counts.items()]
        if not rows:
            return
        db = self._conn()
        async with self._lock:
            await db.executemany(
                "INSERT INTO rejections (run_id, session_no, source, reason, count, last_ms, example) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, session_no, source, reason) DO UPDATE SET "
                "count = excluded.count, last_ms = excluded.last_ms, example = excluded.example", rows)

    async def write_rejections(self, run_id: str, rows: Sequence[RejectionCount]) -> None:
        """Write rejection counts outside a bar (a clean stop); a count never goes down."""
        if not rows:
            return
        db = self._conn()
        async with self._lock:
            await db.executemany(UPSERT_REJECTION, [rejection_row(run_id, r) for r in rows])

    async def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        db = self._conn()
        async with self._lock:
            await db.execute(sql, params)

    # -- the models table (bot/store/models.py): versions outside bars; swaps go with their bar ------------

    async def models(self, run_id: str) -> list[ModelVersion]:
        """Every model version of ``run_id``, oldest first."""
        db = self._conn()
        async with self._lock:
            rows = await db.execute_fetchall(SELECT_MODELS, (run_id,))
        return [model_from_row(r) for r in rows]

    async def record_model(self, run_id: str, m: ModelVersion) -> None:
        """Insert the row of a version (one already logged stays)."""
        sql, params = insert_statement(run_id, m)
        await self._execute(sql, params)

    async def update_model(self, run_id: str, version: int, **values: object) -> None:
        """Set columns of a version's row (a verdict, a failure, its checkpoint)."""
        if not values or not set(values) <= set(MODEL_COLUMNS):
            raise ValueError(f"unknown models column(s): {sorted(set(values) - set(MODEL_COLUMNS))}")
        sets = ", ".join(f"{k} = ?" for k in values)
        await self._execute(f"UPDATE models SET {sets} WHERE run_id = ? AND version = ?",
                            (*values.values(), run_id, version))

    async def first_candle_ms(self, run_id: str) -> int | None:
        """The open time of the earliest candle logged for ``run_id``."""
        db = self._conn()
        async with self._lock:
            ((first,),) = await db.execute_fetchall("SELECT MIN(bar_ms) FROM candles WHERE run_id = ?", (run_id,))
        return None if first is None else int(first)

    async def logged_trades(self, run_id: str) -> dict[str, set[str]]:
        """The exchange trade ids already logged for each open order of ``run_id`` (its partial fills)."""
        db = self._conn()
        async with self._lock:
            rows = await db.execute_fetchall(
                "SELECT f.order_id, f.trade_id FROM fills f JOIN orders o USING (run_id, order_id) "
                "WHERE f.run_id = ? AND o.status = 'open'", (run_id,))
        out: dict[str, set[str]] = {}
        for order_id, trade_id in rows:
            out.setdefault(str(order_id), set()).add(str(trade_id))
        return out

    async def pending_commands(self, run_id: str) -> list[tuple[int, str, str]]:
        """The operator's commands not yet taken, oldest first: (command_id, command, note)."""
        db = self._conn()
        async with self._lock:
            rows = await db.execute_fetchall(PENDING_COMMANDS, (run_id,))
        return [(int(i), str(c), str(n)) for i, c, n in rows]

    async def last_operator_block(self, run_id: str) -> tuple[int, str, str] | None:
        """The last command taken, when it left new exposure blocked (stop-entries or flatten, not resumed)."""
        db = self._conn()
        async with self._lock:
            rows = await db.execute_fetchall(
                "SELECT command_id, command, note FROM commands WHERE run_id = ? AND taken_bar_ms IS NOT NULL "
                "ORDER BY command_id DESC LIMIT 1", (run_id,))
        if not rows or rows[0][1] == "resume":
            return None
        return int(rows[0][0]), str(rows[0][1]), str(rows[0][2])

    async def last_bar_ms(self, run_id: str) -> int | None:
        """The open time of the last bar written for ``run_id``, or None."""
        db = self._conn()
        async with self._lock:
            ((last,),) = await db.execute_fetchall("SELECT MAX(bar_ms) FROM equity WHERE run_id = ?", (run_id,))
        return None if last is None else int(last)

    async def bar_range(self, run_id: str) -> tuple[int, int] | None:
        """Open times of the first and the last bar written for ``run_id``, or None."""
        db = self._conn()
        async with self._lock:
            ((first, last),) = await db.execute_fetchall(
                "SELECT MIN(bar_ms), MAX(bar_ms) FROM equity WHERE run_id = ?", (run_id,))
        return None if first is None else (int(first), int(last))

    async def recent_edges(self, run_id: str, n: int) -> dict[str, list[float]]:
        """Each symbol's last ``n`` expected returns (``edge``, else ``mu``), oldest first: the history the risk
        manager's no-trade band resumes from (non-finite values as 0, as the manager keeps them)."""
        if n <= 0:
            return {}
        db = self._conn()
        out: dict[str, list[float]] = {}
        async with self._lock:
            symbols = [s for (s,) in await db.execute_fetchall(
                "SELECT DISTINCT symbol FROM forecasts WHERE run_id = ?", (run_id,))]
            for sym in symbols:
                rows = await db.execute_fetchall(
                    "SELECT COALESCE(edge, mu) FROM forecasts WHERE run_id = ? AND symbol = ? "
                    "ORDER BY bar_ms DESC LIMIT ?", (run_id, sym, n))
                out[sym] = [float(e) if e is not None and math.isfinite(e) else 0.0 for (e,) in reversed(rows)]
        return out

    async def resume_state(self, run_id: str) -> ResumeState | None:
        """The account as of the last bar written for ``run_id``; None if no bar is."""
        db = self._conn()
        async with self._lock:
            return await self._resume_state(db, run_id)

    @staticmethod
    async def _resume_state(db: aiosqlite.Connection, run_id: str) -> ResumeState | None:
        # One read transaction, so the rows come from one snapshot.
        await db.execute("BEGIN")
        try:
            last = list(await db.execute_fetchall(
                "SELECT bar_ms, cash FROM equity WHERE run_id = ? ORDER BY bar_ms DESC LIMIT 1", (run_id,)))
            if not last:
                return None
            bar_ms, cash = last[0]
            positions = await db.execute_fetchall(
                "SELECT symbol, qty, avg_price, mark, margin FROM positions WHERE run_id = ? AND bar_ms = ? "
                "ORDER BY symbol", (run_id, bar_ms))
            orders = await db.execute_fetchall(
                "SELECT order_id, symbol, bar_ms, side, qty, leverage, type, price FROM orders "
                "WHERE run_id = ? AND status = 'open' ORDER BY bar_ms, order_id", (run_id,))
            # Each symbol's latest forecast (a symbol whose window restarted has none at the last bar): it
            # carries the scoring state, and it is scored at the next bar if it was made at the last one.
            forecasts = await db.execute_fetchall(
                f"SELECT {FORECAST_COLUMNS} FROM forecasts f WHERE run_id = ? AND bar_ms = "
                "(SELECT MAX(bar_ms) FROM forecasts g WHERE g.run_id = f.run_id AND g.symbol = f.symbol) "
                "ORDER BY symbol, model", (run_id,))
            risk = list(await db.execute_fetchall(
                "SELECT state, since_bar_ms, reason, peak_equity, coverage_68, coverage_95, outcomes, entry_bars "
                "FROM risk_state WHERE run_id = ? ORDER BY bar_ms DESC LIMIT 1", (run_id,)))
        finally:
            await db.execute("COMMIT")
        held: dict[str, tuple[Decimal, Decimal]] = {}
        marks: dict[str, Decimal] = {}
        margins: dict[str, Decimal] = {}
        for symbol, qty, avg_price, mark, margin in positions:
            marks[symbol] = Decimal(mark)
            if Decimal(qty) != 0:
                held[symbol] = (Decimal(qty), Decimal(avg_price))
                margins[symbol] = Decimal(margin)
        state = None
        if risk:
            st, since, reason, peak, c68, c95, n, entries = risk[0]
            state = RiskStateLogged(st, since, reason, Decimal(peak), c68, c95, n,
                                    tuple(sorted(json.loads(entries).items())))
        return ResumeState(
            last_bar_ms=int(bar_ms), cash=Decimal(cash), positions=held, marks=marks,
            open_orders=tuple(SubmitOrder(o, s, int(b), Side(side), Decimal(q), Decimal(lev), kind,
                                          None if price is None else Decimal(price))
                              for o, s, b, side, q, lev, kind, price in orders),
            margins=margins, risk_state=state,
            forecasts=tuple(forecast_from_row(row) for row in forecasts))


# Bind variables per statement stay far below SQLite's limit (999 before version 3.32).
_EQUITY_CHUNK = 200


@functools.lru_cache(maxsize=8)
def _insert_equity_sql(n: int) -> str:
    """Insert ``n`` equity rows, skipping bars already logged; RETURNING names the bars that went in."""
    values = ", ".join(["(?, ?, ?, ?)"] * n)
    return (f"INSERT INTO equity (run_id, bar_ms, cash, equity) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING bar_ms")


async def _ensure_schema(db: aiosqlite.Connection, path: Path) -> None:
    """Create the schema in a fresh file; check the version of an existing one."""
    tables = {name for (name,) in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        # IF NOT EXISTS and the guarded insert make this safe against a second process doing the same.
        await db.executescript(
            "BEGIN IMMEDIATE;\n" + SCHEMA +
            f"INSERT INTO schema_version (version) SELECT {SCHEMA_VERSION} "
            "WHERE NOT EXISTS (SELECT 1 FROM schema_version);\nCOMMIT;\n")
        log.info("%s: created trade log schema version %d", path, SCHEMA_VERSION)
    elif "schema_version" not in tables:
        raise DataError(f"{path}: not a trade log (an SQLite file without a schema_version table)")
    rows = list(await db.execute_fetchall("SELECT MAX(version) FROM schema_version"))
    if rows[0][0] == 1:
        await _migrate_1_to_2(db, path)
        rows = list(await db.execute_fetchall("SELECT MAX(version) FROM schema_version"))
    if rows[0][0] == 2:
        try:
            await db.executescript("BEGIN IMMEDIATE;\n" + MIGRATE_2_TO_3 + "COMMIT;\n")
        except BaseException:
            await _rollback(db)
            raise
        log.warning("%s: trade log migrated from schema version 2 to 3", path)
        rows = list(await db.execute_fetchall("SELECT MAX(version) FROM schema_version"))
    if rows[0][0] == 3:
        if "commands" not in tables:
            await db.executescript("BEGIN IMMEDIATE;\n" + COMMANDS_DDL + "COMMIT;\n")
            tables.add("commands")
        try:
            await db.executescript("BEGIN IMMEDIATE;\n" + MIGRATE_3_TO_4 + "COMMIT;\n")
        except BaseException:
            await _rollback(db)
            raise
        log.warning("%s: trade log migrated from schema version 3 to 4 (models table, forecasts.model_version)",
                    path)
        rows = list(await db.execute_fetchall("SELECT MAX(version) FROM schema_version"))
    check_schema_version(rows[0][0], path)
    if tables and "commands" not in tables:
        # Added to version 3 without a version change: created in a file that predates it.
        await db.executescript("BEGIN IMMEDIATE;\n" + COMMANDS_DDL + "COMMIT;\n")
    if tables and "bar_timings" not in tables:
        await db.executescript("BEGIN IMMEDIATE;\n" + TIMINGS_DDL + "COMMIT;\n")


async def _migrate_1_to_2(db: aiosqlite.Connection, path: Path) -> None:
    """Rebuild orders and fills for schema version 2 (limit orders, one fill row per exchange trade)."""
    await db.execute("PRAGMA foreign_keys = OFF")   # a no-op inside a transaction: set before BEGIN
    try:
        await db.executescript("BEGIN IMMEDIATE;\n" + MIGRATE_1_TO_2 + "COMMIT;\n")
    except BaseException:
        await _rollback(db)
        raise
    finally:
        await db.execute("PRAGMA foreign_keys = ON")
    broken = list(await db.execute_fetchall("PRAGMA foreign_key_check"))
    if broken:
        raise DataError(f"{path}: after migrating to schema version 2, {len(broken)} row(s) break a foreign key")
    log.warning("%s: trade log migrated from schema version 1 to 2", path)


def _bars_text(bars: list[int]) -> str:
    return f"bar {bars[0]}" if len(bars) == 1 else f"{len(bars)} bars {min(bars)}..{max(bars)}"


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:   # no transaction is active: BEGIN failed, or COMMIT already went through
        pass
