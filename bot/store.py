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
import os
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import aiosqlite

from bot.config import config_changes
from bot.errors import DataError
from bot.events import Candle, EquityMarked, FundingPaid, OrderFilled, Side, SubmitOrder, VarMeasured
from bot.rejections import RejectionCount
from bot.schema import (
    COMMANDS_DDL,
    INSERT_CANDLE,
    INSERT_DECISION,
    INSERT_DELEVERAGE,
    INSERT_FILL,
    INSERT_FORECAST,
    INSERT_FUNDING,
    INSERT_ORDER,
    INSERT_POSITION,
    INSERT_RISK_STATE,
    INSERT_VAR,
    MARK_CANCELLED,
    MARK_COMMAND_TAKEN,
    MARK_FILLED,
    MIGRATE_1_TO_2,
    MIGRATE_2_TO_3,
    PENDING_COMMANDS,
    SCHEMA,
    SCHEMA_VERSION,
)
from risk.events import Decision, Delevered, RiskStateLogged
from strategies.calibration import Z68, Z95
from strategies.events import Forecast

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
NEW_RUN_HINT = "pick a new [run] id in config.toml"   # bot run; a backtest names its --run


@dataclass(frozen=True, slots=True)
class BarRecord:
    """Everything that happened at one bar, written in one transaction."""

    bar_ms: int
    candles: tuple[Candle, ...]
    forecasts: tuple[Forecast, ...]
    decisions: tuple[Decision, ...]
    orders: tuple[SubmitOrder, ...]          # submitted at this bar's close
    fills: tuple[OrderFilled, ...]           # filled at this bar's open (orders from earlier bars)
    cancelled: tuple[tuple[str, str], ...]   # (order_id, reason)
    equity: EquityMarked                     # cash/equity row and one positions row per PositionMarked
    funding: tuple[FundingPaid, ...] = ()
    risk_state: RiskStateLogged | None = None
    var: tuple[VarMeasured, ...] = ()
    deleverage: tuple[Delevered, ...] = ()
    # This session's rejection counts that grew since the previous bar: committed with the bar, so a crash
    # loses none that an earlier bar saw.
    rejections: tuple[RejectionCount, ...] = ()
    # Operator commands (command_id) this bar's decision took: marked taken with the bar.
    commands: tuple[int, ...] = ()


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


# Versions the read-only tools (report, status) read as they are; the store migrates them on open.
READABLE_VERSIONS = (1, 2, SCHEMA_VERSION)


def check_schema_version(version: int | None, path: str | Path, readable: tuple[int, ...] = (SCHEMA_VERSION,)) -> None:
    """Raise DataError unless ``version`` is one of the ``readable`` schema versions."""
    if version in readable:
        return
    if version is None:
        raise DataError(f"{path}: not a trade log (its schema_version table is empty)")
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: trade log schema version {version} is newer than this bot understands "
                        f"(version {SCHEMA_VERSION}); upgrade the bot or use another database file")
    raise DataError(f"{path}: unknown trade log schema version {version} (this bot reads version "
                    f"{SCHEMA_VERSION}); use another database file")


def check_trade_log_file(path: Path) -> None:
    """DataError unless this process can create a trade log at ``path`` or write the one there; writes nothing.

    Refused: a missing or read-only folder, a folder or other non-file at ``path``, a file this process
    may not read and write, an empty (0-byte) file, and any file that is not a trade log this code knows
    (another SQLite database, or not a database at all), read through a read-only connection, so it stays
    untouched.  An SQLite file without any table becomes a new log (another process may be creating it).
    """
    folder = path.parent
    if not folder.is_dir():
        raise DataError(f"{path}: cannot open the trade log: folder {folder} does not exist")
    # SQLite creates the -wal and -shm files beside the log, so the folder must be writable either way.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write the trade log: folder {folder} is not writable "
                        "(bot status and bot report can read a log there)")
    if not path.exists():
        return
    if path.is_dir():
        raise DataError(f"{path}: cannot open the trade log: it is a folder, not a file")
    if not path.is_file():
        raise DataError(f"{path}: cannot open the trade log: not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise DataError(f"{path}: cannot write the trade log: the file is read-only or unreadable to this "
                        "user (bot status and bot report can read a readable one)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: an empty (0-byte) file, not a trade log; remove it to start a new log there")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
                       if "schema_version" in tables else None)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a trade log ({exc})") from exc
    if tables and "schema_version" not in tables:
        raise DataError(f"{path}: not a trade log (an SQLite file without a schema_version table); "
                        "it was left as it is")
    if not tables:   # an SQLite file with nothing in it (a log another process is creating): it becomes one
        return
    if version is None or version > SCHEMA_VERSION:
        check_schema_version(version, path)


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
                for k, sql in enumerate(_INSERTS):
                    rows = [row for b in fresh for row in b.inserts[k]]
                    if rows:
                        await db.executemany(sql, rows)
                for k, (sql, status) in enumerate(_STATUS_UPDATES):
                    rows = [row for b in fresh for row in b.status[k]]
                    if rows and (await db.executemany(sql, rows)).rowcount != len(rows):
                        raise DataError(f"{_bars_text(bars)} of run {run_id!r} not written: an order marked "
                                        f"{status} is not open in {self._path}")
                # A held bar retried after a later one took the same command: the first write wins.
                taken = [row for b in fresh for row in b.commands]
                if taken:
                    await db.executemany(MARK_COMMAND_TAKEN, taken)
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
            await db.executemany(UPSERT_REJECTION, [_rejection_row(run_id, r) for r in rows])

    async def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        db = self._conn()
        async with self._lock:
            await db.execute(sql, params)

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


FORECAST_COLUMNS = ("symbol, bar_ms, mu, sigma, model, edge, edge_se, mu_raw, sigma_raw, skill, z68, z95, nu, alarm, "
                    "state")


def _real(x: float) -> float | None:
    """NaN as NULL (SQLite would store it as NULL anyway; this says so)."""
    return None if x != x else x


def forecast_from_row(row: Sequence[Any]) -> Forecast:
    """A :class:`Forecast` from a row of :data:`FORECAST_COLUMNS` (NULLs of pre-version-3 rows as defaults)."""
    sym, b, mu, sg, m, edge, edge_se, mu_raw, sigma_raw, skill, z68, z95, nu, alarm, state = row
    nan = math.nan
    return Forecast(str(sym), int(b), float(mu), float(sg), str(m),
                    nan if edge is None else float(edge), 0.0 if edge_se is None else float(edge_se),
                    nan if mu_raw is None else float(mu_raw), nan if sigma_raw is None else float(sigma_raw),
                    nan if skill is None else float(skill), Z68 if z68 is None else float(z68),
                    Z95 if z95 is None else float(z95), math.inf if nu is None else float(nu),
                    alarm or "", state or "")


# Bind variables per statement stay far below SQLite's limit (999 before version 3.32).
_EQUITY_CHUNK = 200


@functools.lru_cache(maxsize=8)
def _insert_equity_sql(n: int) -> str:
    """Insert ``n`` equity rows, skipping bars already logged; RETURNING names the bars that went in."""
    values = ", ".join(["(?, ?, ?, ?)"] * n)
    return (f"INSERT INTO equity (run_id, bar_ms, cash, equity) VALUES {values} "
            "ON CONFLICT DO NOTHING RETURNING bar_ms")


class BarRows(NamedTuple):
    """One bar's rows for the trade log, plain values only (so a batch pickles fast to a writer process)."""

    bar_ms: int
    cash: str
    equity: str
    inserts: tuple[list[tuple[object, ...]], ...]   # parameter rows per statement of _INSERTS
    status: tuple[list[tuple[object, ...]], ...]    # parameter rows per statement of _STATUS_UPDATES
    commands: tuple[tuple[object, ...], ...] = ()   # MARK_COMMAND_TAKEN rows


# A session's count of one reason only grows; MAX keeps a late-written older snapshot from lowering it.
UPSERT_REJECTION = (
    "INSERT INTO rejections (run_id, session_no, source, reason, count, last_ms, example) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, session_no, source, reason) DO UPDATE SET "
    "count = MAX(count, excluded.count), last_ms = MAX(last_ms, excluded.last_ms), example = excluded.example")


def _rejection_row(run_id: str, r: RejectionCount) -> tuple[object, ...]:
    return (run_id, r.session_no, r.source, r.reason, r.count, r.last_ms, r.example[:500])


# Parents first: a fill's foreign key needs its order, which may be in the same batch.
_INSERTS = (INSERT_CANDLE, INSERT_FORECAST, INSERT_DECISION, INSERT_ORDER, INSERT_FILL, INSERT_POSITION,
            INSERT_FUNDING, INSERT_RISK_STATE, INSERT_VAR, INSERT_DELEVERAGE, UPSERT_REJECTION)
_STATUS_UPDATES = ((MARK_FILLED, "filled"), (MARK_CANCELLED, "cancelled"))


def check_unique_bars(run_id: str, records: Sequence[BarRecord]) -> None:
    """ValueError if a batch holds a bar more than once."""
    bars = [r.bar_ms for r in records]
    if len(set(bars)) != len(bars):
        twice = sorted({b for b in bars if bars.count(b) > 1})
        raise ValueError(f"run {run_id!r}: a batch holds bar(s) {twice} more than once")


def bar_rows(run_id: str, r: BarRecord) -> BarRows:
    """The rows of ``r`` (ValueError if an event in it belongs to another bar)."""
    _check_bar_times(r)
    bar = r.bar_ms
    candles = [(run_id, c.symbol, bar, c.close_ms, str(c.open), str(c.high), str(c.low), str(c.close),
                str(c.volume)) for c in r.candles]
    forecasts = [(run_id, bar, f.symbol, f.model, f.mu, f.sigma, _real(f.mu_raw), _real(f.sigma_raw), _real(f.skill),
                  _real(f.edge), f.edge_se, f.z68, f.z95, f.nu, f.alarm, f.state or None) for f in r.forecasts]
    decisions = [(run_id, bar, d.symbol, d.action, str(d.target_qty), str(d.current_qty), d.reason)
                 for d in r.decisions]
    orders = [(run_id, o.order_id, bar, o.symbol, Side(o.side).value, str(o.qty), str(o.leverage), o.order_type,
               "open", None, None if o.limit_price is None else str(o.limit_price)) for o in r.orders]
    # A liquidation is no decision: its order row is written with it, already filled.
    orders += [(run_id, f.order_id, bar, f.symbol, Side(f.side).value, str(f.qty), "1", "liquidation",
                "filled", bar, None) for f in r.fills if f.reason == "liquidation"]
    fills = [(run_id, f.order_id, f.symbol, f.decision_bar_ms, bar, Side(f.side).value, str(f.qty),
              str(f.price), str(f.fee), f.reason, f.trade_id) for f in r.fills]
    positions = [(run_id, bar, p.symbol, str(p.qty), str(p.avg_price), str(p.mark), str(p.margin),
                  None if p.liq_price is None else str(p.liq_price)) for p in r.equity.positions]
    funding = [(run_id, bar, f.symbol, str(f.qty), str(f.mark), str(f.rate), str(f.amount)) for f in r.funding]
    risk: list[tuple[object, ...]] = []
    if r.risk_state is not None:
        k = r.risk_state
        risk.append((run_id, bar, k.state, k.since_bar_ms, k.reason, str(k.peak_equity), k.coverage_68,
                     k.coverage_95, k.outcomes, json.dumps(dict(k.entry_bars), sort_keys=True)))
    var = [(run_id, bar, v.method, v.horizon, v.alpha, v.var, v.es) for v in r.var]
    steps = [(run_id, bar, d.step, d.symbol, d.exposure_before, d.exposure_after, d.var_before, d.var_after)
             for d in r.deleverage]
    # A partial fill of an exchange order (final false) leaves it open.
    filled = [(bar, run_id, f.order_id) for f in r.fills if f.reason != "liquidation" and f.final]
    cancelled = [(reason, bar, run_id, order_id) for order_id, reason in r.cancelled]
    rejections = [_rejection_row(run_id, k) for k in r.rejections]
    return BarRows(bar, str(r.equity.cash), str(r.equity.equity),
                   (candles, forecasts, decisions, orders, fills, positions, funding, risk, var, steps, rejections),
                   (filled, cancelled), tuple((bar, run_id, c) for c in r.commands))


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
    check_schema_version(rows[0][0], path)
    if tables and "commands" not in tables:
        # Added to version 3 without a version change: created in a file that predates it.
        await db.executescript("BEGIN IMMEDIATE;\n" + COMMANDS_DDL + "COMMIT;\n")


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


def _check_bar_times(record: BarRecord) -> None:
    """Raise ValueError if an event of ``record`` belongs to another bar: it would be logged under the wrong key."""
    bar = record.bar_ms
    stray = ([f"candle {c.symbol}@{c.open_ms}" for c in record.candles if c.open_ms != bar]
             + [f"forecast {f.symbol}@{f.bar_ms}" for f in record.forecasts if f.bar_ms != bar]
             + [f"decision {d.symbol}@{d.bar_ms}" for d in record.decisions if d.bar_ms != bar]
             + [f"order {o.order_id}@{o.bar_ms}" for o in record.orders if o.bar_ms != bar]
             + [f"fill {f.order_id}@{f.fill_bar_ms}" for f in record.fills if f.fill_bar_ms != bar]
             + [f"fill {f.order_id} decided at {f.decision_bar_ms}, not before it" for f in record.fills
                if f.decision_bar_ms >= bar and f.reason != "liquidation"]
             + ([f"equity@{record.equity.bar_ms}"] if record.equity.bar_ms != bar else []))
    if stray:
        raise ValueError(f"bar record {bar} holds events of other bars: {', '.join(stray[:5])}"
                         + (f" and {len(stray) - 5} more" if len(stray) > 5 else ""))
