"""``bot report --db PATH [--run ID]``: what a run did, read back from the trade log.

:func:`load_report` reads one run (the most recently active one by default)
with the standard library's sqlite3, read-only, and works out the figures with
the pure functions below; :func:`format_report` lays them out as plain text.

Per-symbol PnL is realised plus unrealised, from the fills (liquidations
included) and the perpetual funding payments:

    pnl(s) = Σ over fills of s of (±qty × price − fee) + Σ funding(s) + final_qty(s) × final_mark(s)

with + for a sell and − for a buy.  Summed over symbols, the cash flows are the
change in cash since before the first fill, so when the first equity row is
flat cash (a run's first bar has no fills: an order fills no earlier than the
next bar's open) and the last one holds equity = cash + Σ qty × mark:

    Σ pnl(s) = equity_end − equity_start

The report checks that identity, and the two facts it rests on, to the last unit.
Books can balance on absurd prices, so it also checks that the equity path is
physically plausible (:func:`plausibility_check`): no position mark moves by an
order of magnitude from one bar to the next, and no bar moves equity by more than
ten times itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import TypeVar

from bot.errors import DataError
from bot.numfmt import money, sig
from bot.reporting.models import model_lines
from bot.store.files import READABLE_VERSIONS, check_schema_version
from bot.store.models import ModelVersion, read_models
from bot.timefmt import utc_minute

# Sums of exact decimal strings stay exact well beyond the default 28 digits.
_PRECISION = 60
# An order of magnitude in one bar: no market price does that, and no book whose leverage is capped
# (risk.sizing.max_gross_leverage <= 20) gains or loses ten times its equity on sane prices.
IMPLAUSIBLE_FACTOR = 10
_SHOWN = 3   # offending bars named in a failed check


@dataclass(frozen=True, slots=True)
class SymbolPnl:
    symbol: str
    fills: int
    fees: Decimal
    cash_flow: Decimal          # Σ ±qty × price − fee + funding: the cash this symbol brought in
    net_qty: Decimal            # Σ ±qty over the fills
    final_qty: Decimal          # the position at the last bar
    final_mark: Decimal | None  # None when the last bar has no position row for the symbol
    pnl: Decimal                # cash_flow + final_qty × final_mark
    funding: Decimal = Decimal(0)   # Σ funding received (negative: paid)
    liquidations: int = 0


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The largest peak-to-trough fall of equity, as a percentage of the peak."""

    pct: Decimal
    peak_ms: int
    peak_equity: Decimal
    trough_ms: int
    trough_equity: Decimal


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    db_path: str
    run_id: str
    mode: str
    config_hash: str
    code_version: str
    created_ms: int
    sessions: int
    bars: int
    start_ms: int | None             # first and last bar written (open times)
    end_ms: int | None
    equity_start: Decimal | None
    equity_end: Decimal | None
    cash_end: Decimal | None
    total_return_pct: Decimal | None
    max_drawdown: Drawdown | None    # None when equity never fell
    trades: int
    fees: Decimal
    symbols: tuple[SymbolPnl, ...]
    decisions: Mapping[str, int]     # action -> count
    orders: Mapping[str, int]        # status -> count
    forecasts: int
    checks: tuple[Check, ...]
    states: Mapping[str, int] = field(default_factory=dict)   # trading state -> bars spent in it
    state_end: str | None = None
    deleverage_steps: int = 0
    outages: tuple[tuple[int, int | None, str], ...] = ()   # (started_ms, ended_ms or None, reason)
    models: tuple[ModelVersion, ...] = ()    # model versions, retrains and swaps (trade log version 4)

    @property
    def liquidations(self) -> int:
        return sum(s.liquidations for s in self.symbols)

    @property
    def funding(self) -> Decimal:
        return _sum(s.funding for s in self.symbols)

    @property
    def pnl(self) -> Decimal:
        return _sum(s.pnl for s in self.symbols)

    @property
    def reconciles(self) -> bool:
        return all(c.ok for c in self.checks)


def max_drawdown(equity: Iterable[tuple[int, Decimal]]) -> Drawdown | None:
    """The largest fall from a running peak in a (bar_ms, equity) series; None if it never falls."""
    worst: Drawdown | None = None
    peak: Decimal | None = None
    peak_ms = 0
    with localcontext(prec=_PRECISION):
        for bar_ms, value in equity:
            if peak is None or value > peak:
                peak_ms, peak = bar_ms, value
                continue
            if peak <= 0 or value == peak:
                continue
            pct = (peak - value) / peak * 100
            if worst is None or pct > worst.pct:
                worst = Drawdown(pct=pct, peak_ms=peak_ms, peak_equity=peak, trough_ms=bar_ms, trough_equity=value)
    return worst


def symbol_pnl(fills: Iterable[tuple[str, str, Decimal, Decimal, Decimal]],
               final: Mapping[str, tuple[Decimal, Decimal | None]],
               funding: Iterable[tuple[str, Decimal]] = (),
               liquidations: Mapping[str, int] | None = None) -> tuple[SymbolPnl, ...]:
    """Per-symbol PnL from fills ``(symbol, side, qty, price, fee)``, funding ``(symbol, amount)`` and
    final ``{symbol: (qty, mark)}``."""
    flows: dict[str, list[Decimal]] = {}   # symbol -> [fills, fees, cash_flow, net_qty, funding]
    with localcontext(prec=_PRECISION):
        for symbol, side, qty, price, fee in fills:
            sign = {"buy": -1, "sell": 1}[side]
            acc = flows.setdefault(symbol, [Decimal(0)] * 5)
            acc[0] += 1
            acc[1] += fee
            acc[2] += sign * qty * price - fee
            acc[3] -= sign * qty
        for symbol, amount in funding:
            acc = flows.setdefault(symbol, [Decimal(0)] * 5)
            acc[2] += amount
            acc[4] += amount
        out: list[SymbolPnl] = []
        for symbol in sorted(flows.keys() | final.keys()):
            n, fees, cash_flow, net_qty, paid = flows.get(symbol, [Decimal(0)] * 5)
            qty, mark = final.get(symbol, (Decimal(0), None))   # no row at the last bar: flat, unmarked
            value = qty * mark if mark is not None else Decimal(0)
            out.append(SymbolPnl(symbol=symbol, fills=int(n), fees=fees, cash_flow=cash_flow, net_qty=net_qty,
                                 final_qty=qty, final_mark=mark, pnl=cash_flow + value, funding=paid,
                                 liquidations=(liquidations or {}).get(symbol, 0)))
    return tuple(out)


def reconciliation(symbols: Sequence[SymbolPnl], equity_start: Decimal, equity_end: Decimal,
                   cash_end: Decimal) -> tuple[Check, ...]:
    """Check that PnL, positions and equity agree to the last unit."""
    with localcontext(prec=_PRECISION):
        pnl = _sum(s.pnl for s in symbols)
        change = equity_end - equity_start
        marked = cash_end + _sum(s.final_qty * s.final_mark for s in symbols if s.final_mark is not None)
    stray = [f"{s.symbol} holds {s.final_qty} but its fills net {s.net_qty}"
             for s in symbols if s.final_qty != s.net_qty]
    return (
        Check("per-symbol PnL sums to the equity change", pnl == change,
              f"sum(PnL) {money(pnl)} {'=' if pnl == change else '!='} {money(equity_end)} - {money(equity_start)} "
              f"= {money(change)} {_exactly(pnl, change)}"),
        Check("last bar: equity = cash + sum(qty * mark)", marked == equity_end,
              f"{money(cash_end)} + positions = {money(marked)} {'=' if marked == equity_end else '!='} equity "
              f"{money(equity_end)} {_exactly(marked, equity_end)}"),
        Check("positions equal the net filled quantities", not stray,
              "; ".join(stray) or f"{len(symbols)} symbol(s) agree"),
    )


def _exactly(a: Decimal, b: Decimal) -> str:
    """Shown to the cent; the check itself compares every digit, so say which way it went."""
    if a == b:
        return "(to the last unit)"
    with localcontext(prec=_PRECISION):
        return f"(off by {a - b})"


def plausibility_check(equity: Sequence[tuple[int, Decimal]],
                       mark_jumps: Sequence[tuple[str, int, float, float]]) -> Check:
    """Flag an equity path no market could produce: ``mark_jumps`` are (symbol, bar_ms, previous mark, mark)
    pairs of consecutive position marks that moved by :data:`IMPLAUSIBLE_FACTOR` or more; equity moves are
    checked here."""
    moves = [(b, e0, e1) for (_, e0), (b, e1) in zip(equity, equity[1:])
             if e0 > 0 and abs(e1 - e0) > IMPLAUSIBLE_FACTOR * e0]
    problems = [f"{s} marked {prev:.6g} then {mark:.6g} at {utc_minute(b)}" for s, b, prev, mark in mark_jumps[:_SHOWN]]
    problems += [f"equity {e0:.6g} -> {e1:.6g} at {utc_minute(b)}" for b, e0, e1 in moves[:_SHOWN]]
    detail = ("; ".join(problems) + (" ..." if len(mark_jumps) > _SHOWN or len(moves) > _SHOWN else "")
              if problems else f"{len(equity)} bars: no mark moved {IMPLAUSIBLE_FACTOR}x between bars, no bar "
              f"moved equity by more than {IMPLAUSIBLE_FACTOR}x itself")
    return Check("equity path is physically plausible (prices off by orders of magnitude?)", not problems, detail)


# Consecutive marks of each symbol's positions that differ by IMPLAUSIBLE_FACTOR or more (a coarse float
# comparison is enough for an order of magnitude).
_MARK_JUMPS = f"""
SELECT symbol, bar_ms, prev, mark FROM (
    SELECT symbol, bar_ms, CAST(mark AS REAL) AS mark,
           LAG(CAST(mark AS REAL)) OVER (PARTITION BY symbol ORDER BY bar_ms) AS prev
    FROM positions WHERE run_id = ?)
WHERE prev > 0 AND (mark >= prev * {IMPLAUSIBLE_FACTOR} OR mark * {IMPLAUSIBLE_FACTOR} <= prev)
ORDER BY bar_ms, symbol LIMIT {_SHOWN + 1}"""


T = TypeVar("T")


def load_report(db_path: str | Path, run_id: str | None = None) -> Report:
    """Read run ``run_id`` (default: the most recently active run) from the trade log at ``db_path``."""
    return read_run(db_path, run_id, lambda conn, report: report)


def read_run(db_path: str | Path, run_id: str | None, then: Callable[[sqlite3.Connection, Report], T],
             connect: Callable[[Path], sqlite3.Connection] | None = None) -> T:
    """Open the trade log read-only, load the run's report in one read snapshot, and hand both to ``then``
    (which may read more rows from the same snapshot); database errors become DataError naming the file.
    ``connect`` opens the file (default: read-only over a read-write handle, so closing tidies the WAL)."""
    path = Path(db_path)
    if not path.is_file():
        raise DataError(f"{path}: no such trade log")
    conn = (connect or _connect_read_only)(path)
    with closing(conn):
        try:
            return then(conn, _load(conn, path, run_id))
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: cannot read the trade log: {exc}") from exc


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open the trade log read-only (``mode=ro``): nothing in it is created, migrated or written.

    In a folder this user may not write, SQLite cannot make the shared-memory file a WAL log is read
    through; with no write-ahead log beside it (no writer has it open: none could, there) the file is
    read as it stands (``immutable=1``).
    """
    uri = path.resolve().as_uri()
    conn: sqlite3.Connection | None = None
    try:
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()   # opening is lazy: open it now
            return conn
        except sqlite3.OperationalError:
            if conn is not None:
                conn.close()
            wal = Path(str(path) + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise
            return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot open the trade log: {exc}") from exc


def begin_run_snapshot(conn: sqlite3.Connection, path: Path, run_id: str | None) -> str:
    """Check that ``conn`` is a trade log this code reads, open one read snapshot (consistent even while
    the daemon writes) and return the run to read: ``run_id``, or the most recently active one."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        raise DataError(f"{path}: not a trade log (no schema_version table)")
    check_schema_version(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0], path,
                         READABLE_VERSIONS)
    conn.execute("BEGIN")
    rid = run_id if run_id is not None else _latest_run(conn, path)
    if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (rid,)).fetchone() is None:
        known = [r for (r,) in conn.execute("SELECT run_id FROM runs ORDER BY created_ms")]
        raise DataError(f"{path}: no run {rid!r} (runs here: {', '.join(known) or 'none'})")
    return rid


def _load(conn: sqlite3.Connection, path: Path, run_id: str | None) -> Report:
    rid = begin_run_snapshot(conn, path, run_id)
    run = conn.execute("SELECT mode, config_hash, code_version, created_ms FROM runs WHERE run_id = ?",
                       (rid,)).fetchone()

    def count(sql: str) -> int:
        return int(conn.execute(sql, (rid,)).fetchone()[0])

    def counts(sql: str) -> dict[str, int]:
        return {str(k): int(n) for k, n in conn.execute(sql, (rid,))}

    equity = [(int(b), Decimal(e)) for b, e in
              conn.execute("SELECT bar_ms, equity FROM equity WHERE run_id = ? ORDER BY bar_ms", (rid,))]
    fills = [(s, side, Decimal(q), Decimal(p), Decimal(f)) for s, side, q, p, f in conn.execute(
        "SELECT symbol, side, qty, price, fee FROM fills WHERE run_id = ? ORDER BY bar_ms, order_id", (rid,))]
    final: dict[str, tuple[Decimal, Decimal | None]] = {}
    cash_end: Decimal | None = None
    if equity:
        cash_end = Decimal(conn.execute("SELECT cash FROM equity WHERE run_id = ? AND bar_ms = ?",
                                        (rid, equity[-1][0])).fetchone()[0])
        final = {s: (Decimal(q), Decimal(m)) for s, q, m in conn.execute(
            "SELECT symbol, qty, mark FROM positions WHERE run_id = ? AND bar_ms = ?", (rid, equity[-1][0]))}
    funding = [(sym, Decimal(a)) for sym, a in conn.execute(
        "SELECT symbol, amount FROM funding WHERE run_id = ? ORDER BY bar_ms", (rid,))]
    liquidations = counts("SELECT symbol, COUNT(*) FROM fills WHERE run_id = ? AND reason = 'liquidation' "
                          "GROUP BY symbol")
    symbols = symbol_pnl(fills, final, funding, liquidations)
    checks: tuple[Check, ...] = ()
    total_return = None
    if equity and cash_end is not None:
        jumps = [(str(s), int(b), float(p), float(m)) for s, b, p, m in conn.execute(_MARK_JUMPS, (rid,))]
        checks = (*reconciliation(symbols, equity[0][1], equity[-1][1], cash_end),
                  plausibility_check(equity, jumps))
        if equity[0][1]:
            with localcontext(prec=_PRECISION):
                total_return = (equity[-1][1] / equity[0][1] - 1) * 100
    return Report(
        db_path=str(path), run_id=rid, mode=run[0], config_hash=run[1], code_version=run[2],
        created_ms=int(run[3]),
        sessions=count("SELECT COUNT(*) FROM sessions WHERE run_id = ?"),
        bars=len(equity),
        start_ms=equity[0][0] if equity else None,
        end_ms=equity[-1][0] if equity else None,
        equity_start=equity[0][1] if equity else None,
        equity_end=equity[-1][1] if equity else None,
        cash_end=cash_end, total_return_pct=total_return, max_drawdown=max_drawdown(equity),
        trades=len(fills), fees=_sum(s.fees for s in symbols), symbols=symbols,
        decisions=counts("SELECT action, COUNT(*) FROM decisions WHERE run_id = ? GROUP BY action ORDER BY action"),
        orders=counts("SELECT status, COUNT(*) FROM orders WHERE run_id = ? GROUP BY status ORDER BY status"),
        forecasts=count("SELECT COUNT(*) FROM forecasts WHERE run_id = ?"),
        checks=checks,
        states=counts("SELECT state, COUNT(*) FROM risk_state WHERE run_id = ? GROUP BY state ORDER BY state"),
        state_end=next((str(st) for (st,) in conn.execute(
            "SELECT state FROM risk_state WHERE run_id = ? ORDER BY bar_ms DESC LIMIT 1", (rid,))), None),
        deleverage_steps=count("SELECT COUNT(*) FROM deleverage_steps WHERE run_id = ?"),
        outages=tuple((int(a), None if b is None else int(b), str(why)) for a, b, why in conn.execute(
            "SELECT started_ms, ended_ms, reason FROM outages WHERE run_id = ? ORDER BY started_ms", (rid,))),
        models=tuple(read_models(conn, rid)),
    )


def _latest_run(conn: sqlite3.Connection, path: Path) -> str:
    """The run whose last session started last (its creation time if it has none)."""
    row = conn.execute(
        "SELECT r.run_id FROM runs r LEFT JOIN sessions s USING (run_id) GROUP BY r.run_id "
        "ORDER BY MAX(COALESCE(s.started_ms, r.created_ms)) DESC, r.created_ms DESC LIMIT 1").fetchone()
    if row is None:
        raise DataError(f"{path}: the trade log holds no runs yet")
    return str(row[0])


def _sum(values: Iterable[Decimal]) -> Decimal:
    with localcontext(prec=_PRECISION):
        return sum(values, Decimal(0))


def format_report(report: Report) -> str:
    """The report as a plain-text page."""
    r = report
    head = [f"Run {r.run_id!r}  mode {r.mode}  config {r.config_hash}  code {r.code_version}",
            f"Trade log {r.db_path}, {r.sessions} session(s), run created {utc_minute(r.created_ms)}"]
    if r.bars == 0 or r.equity_start is None or r.equity_end is None:
        return "\n".join(head + ["", "No bars written yet for this run: nothing to report."]) + "\n"
    dd = r.max_drawdown
    lines = head + [
        "",
        f"Bars        {r.bars:,}  from {utc_minute(r.start_ms)} to {utc_minute(r.end_ms)}",
        f"Equity      {_money(r.equity_start)} -> {_money(r.equity_end)}",
        f"Return      {_pct(r.total_return_pct)}",
        "Drawdown    " + (f"-{_pct(dd.pct, sign=False)}  peak {_money(dd.peak_equity)} at {utc_minute(dd.peak_ms)}, "
                          f"trough {_money(dd.trough_equity)} at {utc_minute(dd.trough_ms)}" if dd else "none"),
        f"Trades      {r.trades:,} fills ({r.liquidations:,} liquidations), fees {_money(r.fees)}, "
        f"funding {_money(r.funding)}",
        f"Risk        state now {r.state_end or '-'}; bars {_tally(r.states) if r.states else '-'}; "
        f"{r.deleverage_steps:,} VaR deleveraging steps",
        f"Outages     {len(r.outages)}" + ("" if not r.outages else
                                           f", {_outage_hours(r.outages):.2f} h in all; last: {r.outages[-1][2]}"),
        f"Decisions   {_tally(r.decisions)}",
        f"Orders      {_tally(r.orders)}",
        f"Forecasts   {r.forecasts:,}",
        "",
    ]
    header = ("Symbol", "Fills", "Liq", "Fees", "Funding", "Final qty", "Mark", "PnL")
    rows = [(s.symbol, f"{s.fills:,}", f"{s.liquidations:,}", _money(s.fees), _money(s.funding), sig(s.final_qty),
             sig(s.final_mark), _money(s.pnl)) for s in r.symbols]
    rows.append(("Total", f"{r.trades:,}", f"{r.liquidations:,}", _money(r.fees), _money(r.funding), "", "",
                 _money(r.pnl)))
    lines += _table(header, rows)
    if r.models:
        lines += [""] + model_lines(r.models)[:-1]
    lines += ["", "Reconciliation (PnL = cash flows of the fills - fees + funding + final qty * mark)"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in r.checks]
    return "\n".join(lines) + "\n"


def _outage_hours(outages: Sequence[tuple[int, int | None, str]]) -> float:
    """Hours of feed outage (an open one counts until it was last seen: not at all)."""
    return sum((end - start) for start, end, _ in outages if end is not None) / 3_600_000


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        # The first column reads left to right; figures line up on the right.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])]


def _money(d: Decimal) -> str:
    return money(d)


def _pct(d: Decimal | None, sign: bool = True) -> str:
    return "-" if d is None else (f"{d:+.2f}%" if sign else f"{d:.2f}%")


def _tally(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in counts.items()) or "none"
