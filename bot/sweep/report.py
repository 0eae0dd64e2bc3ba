"""A sweep's results as one table (CSV, one row per run) and the selection it supports (text).

The selection reads only the validation folds' rows: each configuration's validation series is the mean,
day by day, of its symbol sets' daily returns, the folds one after another.  The chosen configuration is
the one with the best Sharpe ratio of that series; its DSR is taken among all configurations of the grid
(the trials), and the PBO by CSCV over the same T × N matrix.  The held-out rows are reported only for
the chosen configuration, and the report warns when the held-out folds have seen more than one.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.sweep import selection

COLUMNS = ("run_id", "config_id", "fold", "test", "symbols", "from", "to", "ok", "error", "seconds", "bars",
           "net_return", "sharpe", "max_drawdown", "fills", "fees_share")


@dataclass(frozen=True, slots=True)
class ConfigRow:
    config_id: str
    params: tuple[tuple[str, Any], ...]
    fold_sharpe: dict[str, float]          # validation fold → mean annualised Sharpe over symbol sets
    sharpe: float                          # annualised, of the validation series
    net_return: float                      # mean over the validation runs
    fills: float                           # mean over the validation runs


@dataclass
class Analysis:
    configs: list[ConfigRow]               # best validation Sharpe first
    runs: int
    failed: list[tuple[str, str]]          # (run id, error)
    chosen: ConfigRow | None = None
    deflated: selection.Deflated | None = None
    overfitting: selection.Overfitting | None = None
    days: int = 0
    held_out: list[Mapping[str, Any]] = field(default_factory=list)   # the chosen config's test rows
    held_out_configs: int = 0              # configurations ever run on the held-out folds


def _label(params: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params)


def validation_matrix(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], np.ndarray]:
    """(config ids, T × N daily returns): per config, the day-by-day mean over symbol sets, folds in order.
    Only days every configuration has are kept (they share folds and data, so normally all of them)."""
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["test"] or not r["ok"]:
            continue
        for day, ret in zip(json.loads(r["days_json"]), json.loads(r["daily_json"])):
            series[r["config_id"]][day].append(ret)
    ids = sorted(series)
    if not ids:
        return [], np.empty((0, 0))
    days = sorted(set.intersection(*(set(series[c]) for c in ids)))
    m = np.array([[float(np.mean(series[c][d])) for c in ids] for d in days]).reshape(len(days), len(ids))
    return ids, m


def analyse(rows: Sequence[Mapping[str, Any]], blocks: int = 16) -> Analysis:
    """The per-configuration table, the choice on validation folds, its DSR, the grid's PBO and the
    chosen configuration's held-out rows."""
    failed = [(r["run_id"], r["error"]) for r in rows if not r["ok"]]
    params = {r["config_id"]: tuple(tuple(p) for p in json.loads(r["params_json"])) for r in rows}
    per_fold: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    nets: dict[str, list[float]] = defaultdict(list)
    fills: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["ok"] and not r["test"]:
            per_fold[r["config_id"]][r["fold"]].append(r["sharpe"])
            nets[r["config_id"]].append(r["net_return"])
            fills[r["config_id"]].append(r["fills"])
    ids, m = validation_matrix(rows)
    sr = np.atleast_1d(selection.sharpe(m)) if m.size else np.zeros(len(ids))
    configs = [ConfigRow(c, params[c], {f: float(np.mean(v)) for f, v in sorted(per_fold[c].items())},
                         float(sr[i]) * math.sqrt(365), float(np.mean(nets[c])), float(np.mean(fills[c])))
               for i, c in enumerate(ids)]
    configs.sort(key=lambda c: (-c.sharpe, c.config_id))
    a = Analysis(configs, len(rows), failed, days=int(m.shape[0]))
    if not ids or m.shape[0] < 3:
        return a
    best = selection.choose(m)
    a.chosen = next(c for c in configs if c.config_id == ids[best])
    a.deflated = selection.deflated_sharpe(m[:, best], sr)
    b = min(blocks, m.shape[0] // 2 * 2)
    # A grid whose configurations all made the same returns (none traded, typically) has no winner to
    # overfit: every rank ties at the median, and a PBO of 1 would only say so misleadingly.
    if len(ids) >= 2 and b >= 2 and not np.all(m == m[:, :1]):
        a.overfitting = selection.pbo(m, b)
    a.held_out = [r for r in rows if r["test"] and r["config_id"] == a.chosen.config_id]
    a.held_out_configs = len({r["config_id"] for r in rows if r["test"]})
    return a


def format_analysis(a: Analysis, top: int = 10) -> list[str]:
    """The sweep's result as text: the best configurations, the choice, DSR, PBO and the held-out fold."""
    lines = [f"{a.runs} runs, {len(a.configs)} configurations with validation results"
             + (f", {len(a.failed)} failed (first: {a.failed[0][0]}: {a.failed[0][1]})" if a.failed else "")]
    if a.configs:
        folds = sorted({f for c in a.configs for f in c.fold_sharpe})
        lines.append(f"validation: {a.days} days; Sharpe annualised from daily returns; best {min(top, len(a.configs))}"
                     f" of {len(a.configs)}:")
        lines.append("  " + " | ".join(["config", "val Sharpe", *folds, "net (mean)", "fills", "settings"]))
        for c in a.configs[:top]:
            lines.append("  " + " | ".join([c.config_id, f"{c.sharpe:+.2f}",
                                            *(f"{c.fold_sharpe.get(f, float('nan')):+.2f}" for f in folds),
                                            f"{c.net_return:+.2%}", f"{c.fills:.0f}", _label(c.params)]))
    if a.chosen is None:
        lines.append("no choice: fewer than 3 validation days")
        return lines
    lines.append(f"chosen on validation folds only: {a.chosen.config_id} ({_label(a.chosen.params)}), "
                 f"validation Sharpe {a.chosen.sharpe:+.2f}")
    d = a.deflated
    if d is None:
        lines.append("deflated Sharpe: n/a (the chosen configuration never changed equity: nothing traded)")
    else:
        lines.append(f"deflated Sharpe ratio {d.dsr:.3f}: P(true Sharpe > 0) after {d.trials} trials "
                     f"(daily SR {d.sharpe:.4f} vs {d.sr0:.4f} expected of the best by luck; trial SR variance "
                     f"{d.variance:.2e}, skew {d.skew:+.2f}, kurtosis {d.kurtosis:.2f}, T = {d.periods})")
    o = a.overfitting
    if o is None and len(a.configs) >= 2:
        lines.append("probability of backtest overfitting: n/a (every configuration made the same returns)")
    if o is not None:
        lines.append(f"probability of backtest overfitting (CSCV, {o.blocks} blocks, {o.splits} splits): "
                     f"{o.pbo:.2f} (0.5: the in-sample best is no better than a coin out of sample)")
    if not a.held_out:
        lines.append("held-out folds: not run yet")
    else:
        for r in a.held_out:
            state = (f"Sharpe {r['sharpe']:+.2f}, net {r['net_return']:+.2%}, max drawdown {r['max_drawdown']:.2%}, "
                     f"{r['fills']} fills" if r["ok"] else f"failed: {r['error']}")
            lines.append(f"held-out {r['fold']} {r['symbols']}: {state}")
        if a.held_out_configs > 1:
            lines.append(f"warning: {a.held_out_configs} configurations have been run on the held-out folds of "
                         "this results file: the held-out figures are no longer an untouched test")
    return lines


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One row per run: its settings (one column per swept key), fold, symbol set and figures."""
    from bot.timefmt import utc_minute

    keys: list[str] = []
    for r in rows:
        for k, _ in json.loads(r["params_json"]):
            if k not in keys:
                keys.append(k)
    p = Path(path)
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS[:2], *keys, *COLUMNS[2:]])
        for r in rows:
            params = dict(json.loads(r["params_json"]))
            w.writerow([r["run_id"], r["config_id"], *(params.get(k, "") for k in keys), r["fold"], r["test"],
                        r["symbols"], utc_minute(r["start_ms"]), utc_minute(r["end_ms"]), r["ok"], r["error"],
                        f"{r['seconds']:.2f}", r["bars"], f"{r['net_return']:.6f}", f"{r['sharpe']:.4f}",
                        f"{r['max_drawdown']:.6f}", r["fills"], f"{r['fees_share']:.6f}"])
    return p


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every run of a results file, read-only."""
    from bot.errors import DataError
    from bot.sweep.store import open_read_only

    try:
        with open_read_only(path) as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM sweep_runs ORDER BY test, fold, config_id, symbols")]
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a readable sweep results file ({exc})") from exc


__all__ = ["analyse", "Analysis", "format_analysis", "write_csv", "load_rows", "validation_matrix"]
