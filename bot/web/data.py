"""What the dashboard shows, read from a trade log opened read-only (SQLite URI ``mode=ro``).

The figures come from the same functions as ``bot report`` (:func:`bot.reporting.tradelog.load_trade_log`,
:func:`bot.reporting.review.build_review`) and ``bot status`` (:func:`bot.reporting.status.load_status`); this module
only adds the rows those do not keep (orders, VaR over time, deleveraging steps, every session's rejections,
operator commands) and caches a run's review until a new bar, session or outage changes the log.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import DataError
from bot.reporting.review import Review, build_review
from bot.reporting.run_report import Report, begin_run_snapshot
from bot.reporting.status import Status, load_status
from bot.reporting.tradelog import load_trade_log
from bot.store.files import read_only
from bot.store.models import ModelVersion, read_models
from bot.store.rows import BarTiming
from strategies.calibration import Z68, Z95

T = TypeVar("T")


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open the trade log with ``mode=ro``: this process can never write it."""
    try:
        return read_only(path, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot open the trade log read-only: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    mode: str
    created_ms: int
    sessions: int
    running: bool               # the latest session has no end (running, or it died)
    bars: int
    first_bar_ms: int | None
    last_bar_ms: int | None
    equity_start: Decimal | None
    equity_end: Decimal | None


@dataclass(frozen=True, slots=True)
class CandleRow:
    bar_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class BandRow:
    """A forecast made at the close of ``bar_ms`` for the next bar's log return, with the decision taken."""

    bar_ms: int
    mu: float
    sigma: float
    z68: float                  # the logged calibrated half-widths; N(0,1)'s (0.9945, 1.96) in older logs
    z95: float
    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    bar_ms: int
    symbol: str
    side: str
    type: str
    qty: Decimal
    leverage: Decimal
    status: str
    status_reason: str | None


@dataclass(frozen=True, slots=True)
class CommandRow:
    command_id: int
    created_ms: int
    command: str
    note: str
    taken_bar_ms: int | None    # None: waiting for the engine's next bar


class TradeLogReader:
    """One trade log, read-only; a run's review is cached until the log says something new about it."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self._lock = threading.Lock()
        self._reviews: dict[str, tuple[tuple[Any, ...], Review]] = {}

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such trade log")
        with closing(connect_read_only(self.path)) as conn:
            try:
                return fn(conn)
            except sqlite3.DatabaseError as exc:
                raise DataError(f"{self.path}: cannot read the trade log: {exc}") from exc

    def _snapshot(self, run_id: str | None, fn: Callable[[sqlite3.Connection, str], T]) -> T:
        """``fn(conn, run)`` inside one read snapshot of a checked trade log."""
        return self._read(lambda conn: fn(conn, begin_run_snapshot(conn, self.path, run_id)))

    # -- what the report and status compute -------------------------------------------------------------

    def report(self, run_id: str | None) -> Report:
        return load_report_ro(self.path, run_id)

    def status(self, run_id: str | None) -> Status:
        return load_status(self.path, run_id, connect=connect_read_only)

    def review(self, run_id: str) -> Review:
        """The run's review (cached until a new bar, session end or outage)."""
        key = self.fingerprint(run_id)
        with self._lock:
            hit = self._reviews.get(run_id)
            if hit is not None and hit[0] == key:
                return hit[1]
        review = build_review(load_trade_log(self.path, run_id, connect=connect_read_only))
        with self._lock:
            self._reviews[run_id] = (key, review)
        return review

    def fingerprint(self, run_id: str) -> tuple[Any, ...]:
        """Changes whenever a bar, a session, an outage or a command is written for the run."""
        def read(conn: sqlite3.Connection) -> tuple[Any, ...]:
            row = conn.execute(
                "SELECT (SELECT MAX(bar_ms) FROM equity WHERE run_id = ?1), "
                "(SELECT COUNT(*) FROM sessions WHERE run_id = ?1), "
                "(SELECT COUNT(ended_ms) FROM sessions WHERE run_id = ?1), "
                "(SELECT COUNT(*) FROM outages WHERE run_id = ?1), "
                "(SELECT COUNT(ended_ms) FROM outages WHERE run_id = ?1)", (run_id,)).fetchone()
            return tuple(row)
        return self._read(read)

    def last_bar_ms(self, run_id: str | None) -> int | None:
        """The last bar written for the run (any run when None): the cheap poll behind the live updates."""
        def read(conn: sqlite3.Connection) -> int | None:
            if run_id is None:
                (last,) = conn.execute("SELECT MAX(bar_ms) FROM equity").fetchone()
            else:
                (last,) = conn.execute("SELECT MAX(bar_ms) FROM equity WHERE run_id = ?", (run_id,)).fetchone()
            return None if last is None else int(last)
        return self._read(read)

    # -- rows the report does not keep ----------------------------------------------------------------

    def runs(self) -> list[RunSummary]:
        """Every run, most recently active first."""
        def read(conn: sqlite3.Connection) -> list[RunSummary]:
            begin_run_snapshot_any(conn, self.path)
            out = []
            for rid, mode, created, n, _open_sessions, _last_start in conn.execute(
                    "SELECT r.run_id, r.mode, r.created_ms, COUNT(s.session_no), "
                    "SUM(s.ended_ms IS NULL), MAX(COALESCE(s.started_ms, r.created_ms)) "
                    "FROM runs r LEFT JOIN sessions s USING (run_id) GROUP BY r.run_id "
                    "ORDER BY MAX(COALESCE(s.started_ms, r.created_ms)) DESC, r.created_ms DESC"):
                bars, first, last = conn.execute(
                    "SELECT COUNT(*), MIN(bar_ms), MAX(bar_ms) FROM equity WHERE run_id = ?", (rid,)).fetchone()
                eq = {b: Decimal(e) for b, e in conn.execute(
                    "SELECT bar_ms, equity FROM equity WHERE run_id = ? AND bar_ms IN (?, ?)", (rid, first, last))}
                latest_open = conn.execute(
                    "SELECT ended_ms IS NULL FROM sessions WHERE run_id = ? ORDER BY session_no DESC LIMIT 1",
                    (rid,)).fetchone()
                out.append(RunSummary(str(rid), str(mode), int(created), int(n), bool(latest_open and latest_open[0]),
                                      int(bars), first, last, eq.get(first), eq.get(last)))
            return out
        return self._read(read)

    def symbols(self, run_id: str) -> list[str]:
        return self._snapshot(run_id, lambda conn, rid: [str(s) for (s,) in conn.execute(
            "SELECT DISTINCT symbol FROM candles WHERE run_id = ? ORDER BY symbol", (rid,))])

    def candles(self, run_id: str, symbol: str) -> tuple[list[CandleRow], list[BandRow]]:
        """The symbol's candles, and each forecast with the decision of its bar."""
        def read(conn: sqlite3.Connection, rid: str) -> tuple[list[CandleRow], list[BandRow]]:
            candles = [CandleRow(int(b), float(o), float(h), float(lo), float(c), float(v))
                       for b, o, h, lo, c, v in conn.execute(
                           "SELECT bar_ms, open, high, low, close, volume FROM candles WHERE run_id = ? AND "
                           "symbol = ? ORDER BY bar_ms", (rid, symbol))]
            z = "z68, z95" if _has_column(conn, "forecasts", "z68") else "NULL, NULL"
            band = [BandRow(int(b), float(mu), float(sg), Z68 if z68 is None else float(z68),
                            Z95 if z95 is None else float(z95), str(a or "none"), str(r or ""))
                    for b, mu, sg, z68, z95, a, r in conn.execute(
                        f"SELECT f.bar_ms, f.mu, f.sigma, {z}, d.action, d.reason FROM forecasts f "
                        "LEFT JOIN decisions d ON d.run_id = f.run_id AND d.bar_ms = f.bar_ms AND d.symbol = f.symbol "
                        "WHERE f.run_id = ? AND f.symbol = ? ORDER BY f.bar_ms", (rid, symbol))]
            return candles, band
        return self._snapshot(run_id, read)

    def orders(self, run_id: str) -> list[OrderRow]:
        return self._snapshot(run_id, lambda conn, rid: [
            OrderRow(str(o), int(b), str(s), str(side), str(t), Decimal(q), Decimal(lev), str(st), r)
            for o, b, s, side, t, q, lev, st, r in conn.execute(
                "SELECT order_id, bar_ms, symbol, side, type, qty, leverage, status, status_reason FROM orders "
                "WHERE run_id = ? ORDER BY bar_ms, order_id", (rid,))])

    def var(self, run_id: str) -> list[tuple[int, str, int, float, float, float]]:
        """(bar_ms, method, horizon, alpha, var, es) of every VaR estimate."""
        return self._snapshot(run_id, lambda conn, rid: [
            (int(b), str(m), int(h), float(a), float(v), float(e)) for b, m, h, a, v, e in conn.execute(
                "SELECT bar_ms, method, horizon, alpha, var, es FROM var_estimates WHERE run_id = ? "
                "ORDER BY bar_ms, horizon, method", (rid,))])

    def deleverage(self, run_id: str) -> list[tuple[int, int, str, float, float, float, float]]:
        return self._snapshot(run_id, lambda conn, rid: [
            (int(b), int(k), str(s), float(eb), float(ea), float(vb), float(va))
            for b, k, s, eb, ea, vb, va in conn.execute(
                "SELECT bar_ms, step, symbol, exposure_before, exposure_after, var_before, var_after "
                "FROM deleverage_steps WHERE run_id = ? ORDER BY bar_ms, step", (rid,))])

    def states(self, run_id: str) -> list[tuple[int, str, str]]:
        """(bar_ms, state, reason) at each bar where the trading state or its reason changed."""
        def read(conn: sqlite3.Connection, rid: str) -> list[tuple[int, str, str]]:
            out: list[tuple[int, str, str]] = []
            for b, st, why in conn.execute("SELECT bar_ms, state, reason FROM risk_state WHERE run_id = ? "
                                           "ORDER BY bar_ms", (rid,)):
                if not out or (out[-1][1], out[-1][2]) != (st, why):
                    out.append((int(b), str(st), str(why)))
            return out
        return self._snapshot(run_id, read)

    def state_series(self, run_id: str) -> list[tuple[int, str]]:
        return self._snapshot(run_id, lambda conn, rid: [(int(b), str(s)) for b, s in conn.execute(
            "SELECT bar_ms, state FROM risk_state WHERE run_id = ? ORDER BY bar_ms", (rid,))])

    def rejections(self, run_id: str) -> list[tuple[int, str, str, int, int, str]]:
        """(session_no, source, reason, count, last_ms, example) of every session."""
        return self._snapshot(run_id, lambda conn, rid: [
            (int(n), str(src), str(r), int(c), int(t), str(ex)) for n, src, r, c, t, ex in conn.execute(
                "SELECT session_no, source, reason, count, last_ms, example FROM rejections WHERE run_id = ? "
                "ORDER BY session_no, count DESC, source, reason", (rid,))])

    def commands(self, run_id: str) -> list[CommandRow]:
        """The operator's commands (none in a trade log without a commands table)."""
        def read(conn: sqlite3.Connection, rid: str) -> list[CommandRow]:
            if not _has_table(conn, "commands"):
                return []
            return [CommandRow(int(i), int(c), str(cmd), str(n), None if t is None else int(t))
                    for i, c, cmd, n, t in conn.execute(
                        "SELECT command_id, created_ms, command, note, taken_bar_ms FROM commands "
                        "WHERE run_id = ? ORDER BY command_id", (rid,))]
        return self._snapshot(run_id, read)

    def timings(self, run_id: str) -> list[BarTiming]:
        """When each live bar arrived and was committed (none for a backtest, or a log that predates them)."""
        def read(conn: sqlite3.Connection, rid: str) -> list[BarTiming]:
            if not _has_table(conn, "bar_timings"):
                return []
            return [BarTiming(int(b), int(c), int(f), int(la), int(k), int(n), bool(late))
                    for b, c, f, la, k, n, late in conn.execute(
                        "SELECT bar_ms, close_ms, first_received_ms, last_received_ms, committed_ms, candles, late "
                        "FROM bar_timings WHERE run_id = ? ORDER BY bar_ms", (rid,))]
        return self._snapshot(run_id, read)
    def models(self, run_id: str) -> list[ModelVersion]:
        """The run's model versions (none in a trade log older than schema version 4)."""

        return self._snapshot(run_id, lambda conn, rid: read_models(conn, rid))

    def has_commands_table(self) -> bool:
        return self._read(lambda conn: _has_table(conn, "commands"))

    def config(self, run_id: str) -> dict[str, Any]:
        def read(conn: sqlite3.Connection, rid: str) -> dict[str, Any]:
            (text,) = conn.execute("SELECT config_json FROM runs WHERE run_id = ?", (rid,)).fetchone()
            try:
                data = json.loads(text)
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
        return self._snapshot(run_id, read)


def load_report_ro(path: Path, run_id: str | None) -> Report:
    from bot.reporting.run_report import read_run

    return read_run(path, run_id, lambda conn, report: report, connect_read_only)


def begin_run_snapshot_any(conn: sqlite3.Connection, path: Path) -> None:
    """Check the file is a trade log this code reads and open one read snapshot (no run needed)."""
    from bot.store.files import READABLE_VERSIONS, check_schema_version

    if not _has_table(conn, "schema_version"):
        raise DataError(f"{path}: not a trade log (no schema_version table)")
    check_schema_version(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0], path,
                         READABLE_VERSIONS)
    conn.execute("BEGIN")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return column in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def finite(x: float | None) -> float | None:
    """A float JSON can carry (NaN and infinities become null)."""
    return None if x is None or not math.isfinite(x) else float(x)


__all__ = ["TradeLogReader", "connect_read_only", "RunSummary", "CandleRow", "BandRow", "OrderRow", "CommandRow",
           "finite"]
