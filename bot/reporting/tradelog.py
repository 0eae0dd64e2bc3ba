"""Read everything the review needs from one trade log, in the same read snapshot as :mod:`bot.reporting.run_report`.

Schema versions 1 and 2 are read as they are (version 1 has no ``fills.trade_id``: it reads as '').
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config import TIMEFRAMES_MS
from bot.reporting.run_report import Report, read_run


@dataclass(frozen=True, slots=True)
class FillRow:
    order_id: str
    trade_id: str
    symbol: str
    decision_bar_ms: int
    bar_ms: int
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionRow:
    bar_ms: int
    symbol: str
    action: str
    target_qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class TradeLog:
    report: Report
    config: dict[str, Any]
    timeframe_ms: int
    equity: list[tuple[int, Decimal, Decimal]]                   # (bar_ms, cash, equity)
    positions: dict[int, list[tuple[str, Decimal, Decimal]]]      # bar_ms -> [(symbol, qty, mark)], qty ≠ 0
    fills: list[FillRow]
    funding: list[tuple[int, str, Decimal]]                       # (bar_ms, symbol, amount)
    closes: dict[str, dict[int, float]]                           # symbol -> bar_ms -> close
    forecasts: list[tuple[int, str, str, float, float]]           # (bar_ms, symbol, model, mu, sigma)
    decisions: list[DecisionRow] = field(default_factory=list)
    # (bar_ms, symbol, model) -> (z68, z95, nu) of calibrated forecasts (trade log version 3)
    shapes: dict[tuple[int, str, str], tuple[float, float, float]] = field(default_factory=dict)
    # (bar_ms, symbol, model, skill, mu_raw, alarm) of every scored forecast (version 3)
    skill: list[tuple[int, str, str, float, float, str]] = field(default_factory=list)


def load_trade_log(db_path: str | Path, run_id: str | None = None,
                   connect: Callable[[Path], sqlite3.Connection] | None = None) -> TradeLog:
    """The run's report and rows (default: the most recently active run), from one snapshot."""
    return read_run(db_path, run_id, _rows, connect)


def _rows(conn: sqlite3.Connection, report: Report) -> TradeLog:
    rid = report.run_id
    config_json = conn.execute("SELECT config_json FROM runs WHERE run_id = ?", (rid,)).fetchone()[0]
    try:
        config = json.loads(config_json)
    except ValueError:
        config = {}
    config = config if isinstance(config, dict) else {}
    equity = [(int(b), Decimal(c), Decimal(e)) for b, c, e in conn.execute(
        "SELECT bar_ms, cash, equity FROM equity WHERE run_id = ? ORDER BY bar_ms", (rid,))]
    positions: dict[int, list[tuple[str, Decimal, Decimal]]] = defaultdict(list)
    for b, s, q, m in conn.execute("SELECT bar_ms, symbol, qty, mark FROM positions WHERE run_id = ? "
                                   "ORDER BY bar_ms, symbol", (rid,)):
        if Decimal(q) != 0:
            positions[int(b)].append((str(s), Decimal(q), Decimal(m)))
    columns = {row[1] for row in conn.execute("PRAGMA table_info(fills)")}
    trade_id = "trade_id" if "trade_id" in columns else "''"
    fills = [FillRow(str(o), str(t), str(s), int(d), int(b), str(side), Decimal(q), Decimal(p), Decimal(f), str(r))
             for o, t, s, d, b, side, q, p, f, r in conn.execute(
                 f"SELECT order_id, {trade_id}, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, reason "
                 "FROM fills WHERE run_id = ? ORDER BY bar_ms, reason = 'liquidation', order_id", (rid,))]
    funding = [(int(b), str(s), Decimal(a)) for b, s, a in conn.execute(
        "SELECT bar_ms, symbol, amount FROM funding WHERE run_id = ? ORDER BY bar_ms, symbol", (rid,))]
    closes: dict[str, dict[int, float]] = defaultdict(dict)
    for s, b, c in conn.execute("SELECT symbol, bar_ms, close FROM candles WHERE run_id = ?", (rid,)):
        closes[str(s)][int(b)] = float(c)
    forecasts = [(int(b), str(s), str(m), float(mu), float(sg)) for b, s, m, mu, sg in conn.execute(
        "SELECT bar_ms, symbol, model, mu, sigma FROM forecasts WHERE run_id = ? ORDER BY bar_ms, symbol", (rid,))]
    shapes: dict[tuple[int, str, str], tuple[float, float, float]] = {}
    skill: list[tuple[int, str, str, float, float, str]] = []
    if "z68" in {row[1] for row in conn.execute("PRAGMA table_info(forecasts)")}:
        for b, s, m, z68, z95, nu, k, mu_raw, alarm in conn.execute(
                "SELECT bar_ms, symbol, model, z68, z95, nu, skill, mu_raw, alarm FROM forecasts WHERE run_id = ? "
                "AND z68 IS NOT NULL ORDER BY bar_ms, symbol", (rid,)):
            shapes[(int(b), str(s), str(m))] = (float(z68), float(z95), math.inf if nu is None else float(nu))
            if k is not None:
                skill.append((int(b), str(s), str(m), float(k), math.nan if mu_raw is None else float(mu_raw),
                              alarm or ""))
    decisions = [DecisionRow(int(b), str(s), str(a), Decimal(t), str(r)) for b, s, a, t, r in conn.execute(
        "SELECT bar_ms, symbol, action, target_qty, reason FROM decisions WHERE run_id = ? ORDER BY bar_ms, symbol",
        (rid,))]
    return TradeLog(report=report, config=config, timeframe_ms=_timeframe_ms(config, equity), equity=equity,
                    positions=dict(positions), fills=fills, funding=funding, closes=dict(closes),
                    forecasts=forecasts, decisions=decisions, shapes=shapes, skill=skill)


def _timeframe_ms(config: dict[str, Any], equity: list[tuple[int, Decimal, Decimal]]) -> int:
    """The run's bar length: its config's ``market.timeframe``, else the commonest spacing of the marks, else 1 h."""
    market = config.get("market")
    if isinstance(market, dict) and market.get("timeframe") in TIMEFRAMES_MS:
        return TIMEFRAMES_MS[market["timeframe"]]
    gaps = [b - a for (a, _, _), (b, _, _) in zip(equity, equity[1:]) if b > a]
    return max(set(gaps), key=gaps.count) if gaps else TIMEFRAMES_MS["1h"]
