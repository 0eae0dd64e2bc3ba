"""``bot status --db PATH [--run ID]``: where a run stands now, read back from the trade log.

:func:`load_status` reads one run (the most recently active one by default)
read-only with the standard library's sqlite3, in one snapshot, so it is safe
beside a running daemon; :func:`format_status` lays it out as plain text:

- the last decided bar, and how long ago it closed;
- equity and cash at that bar, the open positions (quantity, average price,
  mark, isolated margin, liquidation price) and the orders still open;
- the trading state (ACTIVE / REDUCING / HALTED), why, and since which bar;
- feed health: outages (how many, for how long, the one going on now) and the
  market-data messages refused in the latest session, by reason;
- the sessions: the latest one, and whether the one before it ended cleanly
  (a session without an end time died: a crash, a kill, a power cut).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bot.config import TIMEFRAMES_MS
from bot.errors import DataError
from bot.numfmt import bps, money, sig
from bot.reporting.models import model_lines
from bot.reporting.run_report import _connect_read_only, begin_run_snapshot
from bot.store.models import ModelVersion, read_models
from bot.timefmt import format_duration


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    qty: Decimal
    avg_price: Decimal
    mark: Decimal
    margin: Decimal
    liq_price: Decimal | None   # None: it cannot be liquidated


@dataclass(frozen=True, slots=True)
class OpenOrder:
    order_id: str
    symbol: str
    bar_ms: int                 # decided at the close of this bar
    side: str
    qty: Decimal
    leverage: Decimal


@dataclass(frozen=True, slots=True)
class TradingStateNow:
    state: str                  # ACTIVE, REDUCING or HALTED
    reason: str
    since_bar_ms: int | None
    bar_ms: int                 # the bar after which it was logged


@dataclass(frozen=True, slots=True)
class Outage:
    started_ms: int
    ended_ms: int | None        # None: going on (or the daemon stopped during it)
    last_bar_ms: int | None
    reason: str
    flattened: bool


@dataclass(frozen=True, slots=True)
class Session:
    session_no: int
    started_ms: int
    ended_ms: int | None        # None: running, or it died without ending
    end_reason: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str
    reason: str
    count: int
    last_ms: int
    example: str


@dataclass(frozen=True, slots=True)
class SkillNow:
    """A symbol's latest scored forecast: the skill scale the decision applied and any active alarm."""

    model: str
    symbol: str
    bar_ms: int
    skill: float
    mu_raw: float
    mu: float
    alarm: str


@dataclass(frozen=True, slots=True)
class Status:
    db_path: str
    run_id: str
    mode: str
    now_ms: int
    timeframe_ms: int | None
    last_bar_ms: int | None                 # open time of the last decided bar
    cash: Decimal | None
    equity: Decimal | None
    positions: tuple[OpenPosition, ...]
    orders: tuple[OpenOrder, ...]
    trading: TradingStateNow | None
    outages: tuple[Outage, ...]             # oldest first
    rejections: tuple[Rejection, ...]       # of the latest session, most frequent first
    sessions: tuple[Session, ...]           # oldest first
    skill: tuple[SkillNow, ...] = ()        # each symbol's latest scored forecast (trade log version 3)
    models: tuple[ModelVersion, ...] = ()   # the run's model versions (trade log version 4)

    @property
    def last_bar_close_ms(self) -> int | None:
        if self.last_bar_ms is None:
            return None
        return self.last_bar_ms + (self.timeframe_ms or 0)

    @property
    def bar_age_ms(self) -> int | None:
        """Time since the last decided bar closed (since it opened when the timeframe is unknown)."""
        close = self.last_bar_close_ms
        return None if close is None else self.now_ms - close

    @property
    def stopped(self) -> bool:
        """The latest session recorded its end: no daemon is running this run."""
        cur = self.latest_session
        return cur is not None and cur.ended_ms is not None

    @property
    def finished(self) -> bool:
        """The latest session ended cleanly (a signal, --max-bars, --stop-after-bar), not after an error."""
        cur = self.latest_session
        return self.stopped and cur is not None and cur.end_reason != "error"

    @property
    def stale(self) -> bool:
        """A running session has decided no bar for more than two bar periods after the last one closed."""
        age = self.bar_age_ms
        return (not self.stopped and age is not None and self.timeframe_ms is not None
                and age > 2 * self.timeframe_ms)

    @property
    def current_outage(self) -> Outage | None:
        return next((o for o in reversed(self.outages) if o.ended_ms is None), None)

    @property
    def outage_total_ms(self) -> int:
        """Summed length of the outages; one still going on counts up to now."""
        return sum((o.ended_ms if o.ended_ms is not None else self.now_ms) - o.started_ms for o in self.outages)

    @property
    def latest_session(self) -> Session | None:
        return self.sessions[-1] if self.sessions else None

    @property
    def previous_session(self) -> Session | None:
        return self.sessions[-2] if len(self.sessions) > 1 else None

    @property
    def unclean_sessions(self) -> int:
        """Sessions before the latest that have no end: they died."""
        return sum(1 for s in self.sessions[:-1] if s.ended_ms is None)


def load_status(db_path: str | Path, run_id: str | None = None, now_ms: int | None = None,
                connect: Callable[[Path], sqlite3.Connection] | None = None) -> Status:
    """Read the status of run ``run_id`` (default: the most recently active run) from the trade log
    (``connect`` opens it; default: read-only over a read-write handle, so closing tidies the WAL)."""
    path = Path(db_path)
    if not path.is_file():
        raise DataError(f"{path}: no such trade log")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with closing((connect or _connect_read_only)(path)) as conn:
        try:
            return _load(conn, path, run_id, now)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: cannot read the trade log: {exc}") from exc


def _load(conn: sqlite3.Connection, path: Path, run_id: str | None, now_ms: int) -> Status:
    rid = begin_run_snapshot(conn, path, run_id)
    run = conn.execute("SELECT mode, config_json FROM runs WHERE run_id = ?", (rid,)).fetchone()
    last = conn.execute("SELECT bar_ms, cash, equity FROM equity WHERE run_id = ? ORDER BY bar_ms DESC LIMIT 1",
                        (rid,)).fetchone()
    last_bar = int(last[0]) if last else None
    positions = () if last is None else tuple(
        OpenPosition(s, Decimal(q), Decimal(a), Decimal(m), Decimal(mg), None if lp is None else Decimal(lp))
        for s, q, a, m, mg, lp in conn.execute(
            "SELECT symbol, qty, avg_price, mark, margin, liq_price FROM positions "
            "WHERE run_id = ? AND bar_ms = ? ORDER BY symbol", (rid, last_bar))
        if Decimal(q) != 0)
    orders = tuple(OpenOrder(o, s, int(b), side, Decimal(q), Decimal(lev)) for o, s, b, side, q, lev in conn.execute(
        "SELECT order_id, symbol, bar_ms, side, qty, leverage FROM orders WHERE run_id = ? AND status = 'open' "
        "ORDER BY bar_ms, order_id", (rid,)))
    risk = conn.execute("SELECT state, reason, since_bar_ms, bar_ms FROM risk_state WHERE run_id = ? "
                        "ORDER BY bar_ms DESC LIMIT 1", (rid,)).fetchone()
    sessions = tuple(Session(int(n), int(s), None if e is None else int(e), r) for n, s, e, r in conn.execute(
        "SELECT session_no, started_ms, ended_ms, end_reason FROM sessions WHERE run_id = ? ORDER BY session_no",
        (rid,)))
    outages = tuple(Outage(int(s), None if e is None else int(e), None if lb is None else int(lb), r, bool(f))
                    for s, e, lb, r, f in conn.execute(
                        "SELECT started_ms, ended_ms, last_bar_ms, reason, flattened FROM outages "
                        "WHERE run_id = ? ORDER BY started_ms", (rid,)))
    rejections: tuple[Rejection, ...] = ()
    if sessions:
        rejections = tuple(Rejection(src, r, int(n), int(t), ex) for src, r, n, t, ex in conn.execute(
            "SELECT source, reason, count, last_ms, example FROM rejections WHERE run_id = ? AND session_no = ? "
            "ORDER BY count DESC, source, reason", (rid, sessions[-1].session_no)))
    skill: tuple[SkillNow, ...] = ()
    if "skill" in {row[1] for row in conn.execute("PRAGMA table_info(forecasts)")}:
        skill = tuple(SkillNow(str(m), str(sym), int(b), float(k), float(raw) if raw is not None else math.nan,
                               float(mu), a or "") for m, sym, b, k, raw, mu, a in conn.execute(
            "SELECT model, symbol, bar_ms, skill, mu_raw, mu, alarm FROM forecasts f WHERE run_id = ? AND skill "
            "IS NOT NULL AND bar_ms = (SELECT MAX(bar_ms) FROM forecasts g WHERE g.run_id = f.run_id AND "
            "g.symbol = f.symbol) ORDER BY symbol, model", (rid,)))
    return Status(
        skill=skill, models=tuple(read_models(conn, rid)),
        db_path=str(path), run_id=rid, mode=str(run[0]), now_ms=now_ms, timeframe_ms=_timeframe_ms(run[1]),
        last_bar_ms=last_bar, cash=Decimal(last[1]) if last else None, equity=Decimal(last[2]) if last else None,
        positions=positions, orders=orders,
        trading=None if risk is None else TradingStateNow(str(risk[0]), str(risk[1]),
                                                          None if risk[2] is None else int(risk[2]), int(risk[3])),
        outages=outages, rejections=rejections, sessions=sessions)


def _timeframe_ms(config_json: str) -> int | None:
    """The run's bar length from its stored settings snapshot; None if it cannot be read."""
    try:
        tf = json.loads(config_json)["market"]["timeframe"]
    except (ValueError, KeyError, TypeError):
        return None
    return TIMEFRAMES_MS.get(tf) if isinstance(tf, str) else None


def format_status(status: Status) -> str:
    """The status as a plain-text page."""
    s = status
    lines = [f"Run {s.run_id!r}  mode {s.mode}  trade log {s.db_path}  (as of {_time(s.now_ms)})", ""]
    lines += _bar_lines(s)
    lines += _trading_lines(s)
    lines += _skill_lines(s)
    lines += model_lines(s.models)
    lines += _feed_lines(s)
    lines += _session_lines(s)
    return "\n".join(lines) + "\n"


def _bar_lines(s: Status) -> list[str]:
    if s.last_bar_ms is None or s.cash is None or s.equity is None:
        return ["Last bar    none decided yet", ""]
    age = s.bar_age_ms
    closed = "closed" if s.timeframe_ms is not None else "opened"
    stale = "  STALE: no bar decided for over two bar periods" if s.stale else ""
    if s.finished:
        stale = "  finished: the last session ended cleanly"
    elif s.stopped:
        stale = "  stopped: the last session ended with an error"
    lines = [f"Last bar    {_time(s.last_bar_ms)} ({closed} {format_duration(age or 0)} ago){stale}",
             f"Equity      {_money(s.equity)}  cash {_money(s.cash)}", ""]
    if s.positions:
        header = ("Position", "Qty", "Avg price", "Mark", "Margin", "Liq price")
        rows = [(p.symbol, sig(p.qty), sig(p.avg_price), sig(p.mark), _money(p.margin), sig(p.liq_price))
                for p in s.positions]
        lines += _table(header, rows) + [""]
    else:
        lines += ["Positions   none (flat)", ""]
    if s.orders:
        header = ("Open order", "Symbol", "Decided at", "Side", "Qty", "Leverage")
        rows = [(o.order_id, o.symbol, _time(o.bar_ms), o.side, sig(o.qty), sig(o.leverage)) for o in s.orders]
        lines += _table(header, rows) + [""]
    else:
        lines += ["Orders      none open", ""]
    return lines


def _trading_lines(s: Status) -> list[str]:
    t = s.trading
    if t is None:
        return ["Trading     no trading state logged yet", ""]
    since = "" if t.since_bar_ms is None else f" since {_time(t.since_bar_ms)}"
    return [f"Trading     {t.state}{since}: {t.reason}", ""]


def _skill_lines(s: Status) -> list[str]:
    if not s.skill:
        return []
    header = ("Skill", "Model", "Scale", "Model mu", "Traded mu", "Alarm")
    rows = [(k.symbol, k.model, f"{k.skill:.3f}", bps(k.mu_raw), bps(k.mu), k.alarm or "none")
            for k in s.skill]
    alarms = sum(1 for k in s.skill if k.alarm)
    note = (f"  {alarms} SKILL ALARM(S): no new exposure from the model on those symbols until skill is shown "
            "again" if alarms else "  scale 0: no skill demonstrated yet, so no trade")
    return _table(header, rows) + [note, ""]


def _feed_lines(s: Status) -> list[str]:
    lengths = [o.ended_ms - o.started_ms for o in s.outages if o.ended_ms is not None]
    lines = [f"Outages     {len(s.outages):,}, {format_duration(s.outage_total_ms)} in all"
             + (f"; longest ended one {format_duration(max(lengths))}" if lengths else "")]
    cur = s.current_outage
    if cur is not None:
        after = "" if cur.last_bar_ms is None else f" after bar {_time(cur.last_bar_ms)}"
        flat = "; trading halted to flatten" if cur.flattened else ""
        lines.append(f"  NOW       since {_time(cur.started_ms)} "
                     f"({format_duration(s.now_ms - cur.started_ms)}){after}: {cur.reason}{flat}")
    session = s.latest_session
    total = sum(r.count for r in s.rejections)
    label = f"session {session.session_no}" if session else "no session"
    lines.append(f"Rejected    {total:,} market-data message(s) in {label}")
    lines += [f"  {r.count:>8,}  {r.source}: {r.reason} (last {_time(r.last_ms)}; e.g. {r.example})"
              for r in s.rejections]
    return lines + [""]


def _session_lines(s: Status) -> list[str]:
    cur, prev = s.latest_session, s.previous_session
    if cur is None:
        return ["Sessions    none"]
    state = (f"ended {_time(cur.ended_ms)} ({cur.end_reason or 'no reason'})" if cur.ended_ms is not None
             else "running, or stopped without ending the session")
    lines = [f"Sessions    {len(s.sessions):,}; latest #{cur.session_no} started {_time(cur.started_ms)}, {state}"]
    if prev is not None:
        how = (f"ended cleanly at {_time(prev.ended_ms)} ({prev.end_reason or 'no reason'})"
               if prev.ended_ms is not None else "DIED: it never recorded an end")
        lines.append(f"  previous  #{prev.session_no} {how}")
    if s.unclean_sessions:
        lines.append(f"  {s.unclean_sessions:,} earlier session(s) did not end cleanly")
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


def _time(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(d: Decimal) -> str:
    return money(d)


__all__ = ["Status", "OpenPosition", "OpenOrder", "TradingStateNow", "Outage", "Session", "Rejection",
           "load_status", "format_status"]
