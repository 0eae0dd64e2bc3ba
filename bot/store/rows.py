"""A bar's events as the trade log's rows, and a logged forecast back as an event: pure, no I/O.

    BarRecord (what happened at one bar) ──► bar_rows ──► BarRows (plain values per statement) ──► TradeStore

The rows are plain strings, numbers and None, so a batch crosses to the writer process
(:mod:`bot.store.writer`) cheaply; :class:`~bot.store.trade_store.TradeStore` runs :data:`INSERTS` and
:data:`STATUS_UPDATES` over them in one transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from bot.events import Candle, EquityMarked, FundingPaid, OrderFilled, Side, SubmitOrder, VarMeasured
from bot.store.rejections import RejectionCount
from bot.store.schema import (
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
    MARK_FILLED,
)
from risk.events import Decision, Delevered, RiskStateLogged
from strategies.calibration import Z68, Z95
from strategies.events import Forecast, state_text


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
    # The models.version that made this bar's forecasts (None: not tracked), and the models-table statements
    # committed with the bar (a new version's row, the swap that makes it serving: bot/store/models.py).
    model_version: int | None = None
    model_rows: tuple[tuple[str, tuple[object, ...]], ...] = ()


class BarTiming(NamedTuple):
    """When a live bar arrived and was committed, wall clock in ms (one bar_timings row less its run)."""

    bar_ms: int
    close_ms: int
    first_received_ms: int
    last_received_ms: int
    committed_ms: int
    candles: int
    late: bool


class BarRows(NamedTuple):
    """One bar's rows for the trade log, plain values only (so a batch pickles fast to a writer process)."""

    bar_ms: int
    cash: str
    equity: str
    inserts: tuple[list[tuple[object, ...]], ...]   # parameter rows per statement of INSERTS
    status: tuple[list[tuple[object, ...]], ...]    # parameter rows per statement of STATUS_UPDATES
    commands: tuple[tuple[object, ...], ...] = ()   # MARK_COMMAND_TAKEN rows
    models: tuple[tuple[str, tuple[object, ...]], ...] = ()   # (statement, parameters), in order


# A session's count of one reason only grows; MAX keeps a late-written older snapshot from lowering it.
UPSERT_REJECTION = (
    "INSERT INTO rejections (run_id, session_no, source, reason, count, last_ms, example) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, session_no, source, reason) DO UPDATE SET "
    "count = MAX(count, excluded.count), last_ms = MAX(last_ms, excluded.last_ms), example = excluded.example")


def rejection_row(run_id: str, r: RejectionCount) -> tuple[object, ...]:
    return (run_id, r.session_no, r.source, r.reason, r.count, r.last_ms, r.example[:500])


# Parents first: a fill's foreign key needs its order, which may be in the same batch.
INSERTS = (INSERT_CANDLE, INSERT_FORECAST, INSERT_DECISION, INSERT_ORDER, INSERT_FILL, INSERT_POSITION,
            INSERT_FUNDING, INSERT_RISK_STATE, INSERT_VAR, INSERT_DELEVERAGE, UPSERT_REJECTION)
STATUS_UPDATES = ((MARK_FILLED, "filled"), (MARK_CANCELLED, "cancelled"))
FORECAST_ROWS = INSERTS.index(INSERT_FORECAST)


def with_state_text(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Forecast rows with each state written as its JSON (:func:`strategies.events.state_text`): a forecast
    row carries the scoring state's values until it is written, so that a backtest's writer process, not the
    engine, spends the time on the floats' reprs."""
    return [row if row[_STATE].__class__ is not tuple
            else (*row[:_STATE], state_text(row[_STATE]), *row[_STATE + 1:])  # type: ignore[arg-type]
            for row in rows]


_STATE = 15   # the state's place in a forecast row (INSERT_FORECAST's columns; model_version follows it)


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
    # A forecast's state is its JSON or still its values: written as JSON by with_state_text.
    forecasts = [(run_id, bar, f.symbol, f.model, f.mu, f.sigma, _real(f.mu_raw), _real(f.sigma_raw), _real(f.skill),
                  _real(f.edge), f.edge_se, f.z68, f.z95, f.nu, f.alarm, f.state or None, r.model_version)
                 for f in r.forecasts]
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
                     k.coverage_95, k.outcomes,
                     json.dumps(dict(k.entry_bars), sort_keys=True) if k.entry_bars else "{}"))
    var = [(run_id, bar, v.method, v.horizon, v.alpha, v.var, v.es) for v in r.var]
    steps = [(run_id, bar, d.step, d.symbol, d.exposure_before, d.exposure_after, d.var_before, d.var_after)
             for d in r.deleverage]
    # A partial fill of an exchange order (final false) leaves it open.
    filled = [(bar, run_id, f.order_id) for f in r.fills if f.reason != "liquidation" and f.final]
    cancelled = [(reason, bar, run_id, order_id) for order_id, reason in r.cancelled]
    rejections = [rejection_row(run_id, k) for k in r.rejections]
    return BarRows(bar, str(r.equity.cash), str(r.equity.equity),
                   (candles, forecasts, decisions, orders, fills, positions, funding, risk, var, steps, rejections),
                   (filled, cancelled), tuple((bar, run_id, c) for c in r.commands), r.model_rows)


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
