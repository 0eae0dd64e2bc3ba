"""One sweep run: a :class:`~bot.sweep.runs.RunSpec` through ``bot backtest``'s engine, then its figures.

A run is :func:`bot.runs.backtest.run_backtest` on its own trade log (``runs/<run id>.sqlite`` in the sweep's
folder), committed from this process (no writer child: a sweep already runs one backtest per core).  Its
figures are read back from that trade log:

    daily returns   close-to-close returns of the last equity mark of each UTC day, the first day's
                    from the starting cash (what the selection statistics and PBO use)
    sharpe          annualised from the daily returns (× √365), sample standard deviation; 0 when flat
    net return      last equity mark / starting cash − 1
    max drawdown    of the hourly equity marks
    fills, fees     counted and summed from the fills (fees as a share of the starting cash)

Everything a worker needs travels in the RunSpec as plain values, so Ray can ship it to another machine;
the data paths must exist there too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.analytics.performance import drawdown_series, sharpe
from bot.analytics.tearsheet import daily_returns
from bot.store.files import read_only
from bot.sweep.runs import RunSpec


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    ok: bool
    error: str = ""
    seconds: float = 0.0
    bars: int = 0
    net_return: float = 0.0
    sharpe: float = 0.0
    max_drawdown: float = 0.0
    fills: int = 0
    fees_share: float = 0.0
    day_ms: tuple[int, ...] = ()            # UTC day of each daily return
    daily: tuple[float, ...] = ()           # daily returns


@lru_cache(maxsize=4)
def _market(files: tuple[tuple[str, str], ...], timeframe: str) -> dict[str, Any]:
    """The CSV data of a run's symbols (cached per worker process: a worker runs many configs on one market)."""
    from bot.config import TIMEFRAMES_MS
    from bot.feeds.replay.csvdata import load_ohlcv_csv

    return {s: load_ohlcv_csv(p, TIMEFRAMES_MS[timeframe]) for s, p in files}


def fold_data(data: dict[str, Any], start_ms: int, end_ms: int, history_ms: int) -> dict[str, Any]:
    """Each series cut to [start − history, end): the backtest decides the same bars (its warm-up needs one
    window before the start; twice that rides over gaps in the data) without precomputing forecasts for
    every year of the file."""
    out = {}
    for sym, series in data.items():
        lo, hi = np.searchsorted(series.open_ms, [start_ms - history_ms, end_ms])
        out[sym] = series.slice(int(lo), int(hi))
    return out


def settings_for(run: RunSpec, db: str) -> Any:
    """The run's settings: the base config with the grid point's keys, its symbols and its trade log."""
    from bot.config import Settings

    base = Settings().with_keys(_flatten(json.loads(run.base_json)))
    return base.with_keys({**dict(run.values), "market.symbols": list(run.symbols), "run.db": db,
                           "run.id": run.run_id})


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def figures(db: str, run_id: str, start: Decimal, seconds: float) -> RunResult:
    """A finished run's figures, read back from its trade log."""
    with closing(read_only(db)) as conn:
        marks = conn.execute("SELECT bar_ms, equity FROM equity WHERE run_id = ? ORDER BY bar_ms",
                             (run_id,)).fetchall()
        fees = [Decimal(f) for (f,) in conn.execute("SELECT fee FROM fills WHERE run_id = ?", (run_id,))]
    bar_ms = np.array([m[0] for m in marks], dtype=np.int64)
    equity = np.array([float(m[1]) for m in marks])
    days, daily = daily_returns(bar_ms, equity, float(start))
    dd = float(np.max(drawdown_series(np.r_[float(start), equity])))
    net = float(Decimal(marks[-1][1]) / start - 1) if marks else 0.0
    # Annualised over 365 days (crypto trades every day); 0 for fewer than two days or a flat curve.
    return RunResult(run_id, True, "", seconds, len(marks), net, sharpe(daily, 365) or 0.0, dd, len(fees),
                     float(sum(fees, Decimal(0)) / start), tuple(int(d) for d in days),
                     tuple(float(r) for r in daily))


def execute(run: RunSpec, out_dir: str, keep_trade_log: bool) -> RunResult:
    """Backtest ``run`` into ``out_dir/runs/<run id>.sqlite`` and return its figures; errors become a result.

    An interrupted run left a trade log that holds a prefix of its bars: ``run_backtest`` resumes it.
    """
    from bot.errors import BotError
    from bot.runs.backtest import run_backtest

    db = Path(out_dir) / "runs" / f"{run.run_id}.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        settings = settings_for(run, str(db))
        data = fold_data(_market(run.files, settings.market.timeframe), run.start_ms, run.end_ms,
                         2 * settings.market.window * settings.market.timeframe_ms)
        asyncio.run(run_backtest(settings, data, run.start_ms, run.end_ms, write_behind=False))
        result = figures(str(db), run.run_id, settings.paper.initial_cash, time.perf_counter() - t0)
    except (BotError, OSError, sqlite3.Error, ValueError) as exc:
        return RunResult(run.run_id, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    if not keep_trade_log:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    return result


__all__ = ["RunResult", "execute", "figures"]
