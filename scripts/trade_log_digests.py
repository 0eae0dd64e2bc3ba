"""Digests of the trade logs ``bot backtest`` writes on fixed generated markets: the engine's reference behaviour.

    python scripts/trade_log_digests.py [--write]      # print (or write) tests/e2e/data/trade_log_digests.json

Each case runs ``run_backtest`` (the in-process backtest: the daemon's engine, the writer process) on a
generated market with one config, then hashes every table of the trade log: the rows without ``run_id``,
as ``repr`` of their tuples, sorted (a deterministic order that does not depend on insertion order), one
SHA-256 per table with its row count.  ``runs`` and ``sessions`` carry wall-clock times and the code
version and are left out, as are the tables and columns added since (``ADDED_TABLES``, ``ADDED_COLUMNS``);
every other table is compared, empty ones included.

The committed JSON was written by the engine at the branch point of the throughput work (3384fe4); the
differential test (``tests/e2e/test_trade_log_digests.py``) reruns every case on the current code and
requires the same digests: a faster engine must log exactly the same candles, forecasts, decisions,
orders, fills, positions, equity, funding, risk states, VaR estimates and deleveraging steps.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
FIXTURE = HERE / "tests" / "e2e" / "data" / "trade_log_digests.json"
START_MS = 1_704_067_200_000
SKIPPED_TABLES = ("runs", "sessions")
# What the trade log gained after the reference digests were written, on purpose and checked by tests of its
# own: schema 4's models table (retraining, #17) and forecasts.model_version, the version number itself, and
# bar_timings (the daemon's feed latency; a backtest writes none).  Left out so that the comparison stays
# with the reference engine's tables and columns.
ADDED_TABLES = ("models", "bar_timings", "schema_version")
ADDED_COLUMNS = {"forecasts": ("model_version",)}

# Cost-blind and wide open: trades on most bars, deleverages under a tight VaR budget, pays funding.
STRENGTH = {"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05,
                     "exit_strength": 0.01}, "var": {"budget_1": 0.01}}
# Leveraged and with tight drawdown limits: REDUCING, HALTED and back, margins, liquidation prices.
LEVERED = {"gate": {"rule": "strength", "long_entry_strength": 0.02, "short_entry_strength": 0.02,
                    "exit_strength": 0.0, "sigma_max": 0.5},
           "sizing": {"kelly_fraction": 1.0, "target_vol_annual": 10.0, "max_position_fraction": 4.0,
                      "max_gross_leverage": 12.0, "max_leverage": 25.0, "rebalance_tolerance": 0.05},
           "var": {"budget_1": 0.2, "budget_24": 0.6},
           "state": {"reduce_drawdown": 0.04, "halt_drawdown": 0.08, "cooldown_bars": 10}}
NO_SKILL = {"skill": {"enabled": False}}

# name: (symbols, window, bars, seed, rows dropped (gaps), config overrides)
CASES: dict[str, tuple[int, int, int, int, bool, dict[str, Any]]] = {
    "default": (6, 48, 300, 3, False, {}),
    "strength": (5, 48, 400, 11, False, {"risk": STRENGTH, "forecast": NO_SKILL,
                                         "paper": {"funding_rate_8h": "0.0001"}}),
    "levered": (8, 32, 500, 5, False, {"risk": LEVERED, "forecast": NO_SKILL}),
    "net_edge_gaps": (4, 48, 400, 7, True, {"forecast": NO_SKILL, "risk": {"gate": {"long_entry_margin": 0.0,
                                                                                       "short_entry_margin": 0.0}}}),
}


def market(n_symbols: int, window: int, bars: int, seed: int, gaps: bool) -> dict[str, Any]:
    """A generated market; with ``gaps`` some symbols miss some hours (a window restarts, a bar is incomplete)."""
    import numpy as np

    from bot.feeds.replay.csvdata import Series
    from bot.feeds.replay.synthetic import generate_market

    syms = [f"S{i:02d}/USDT" for i in range(n_symbols)]
    data = generate_market(syms, window + bars, START_MS, seed=seed)
    if gaps:
        for j, sym in enumerate(syms[1:], start=1):
            s = data[sym]
            drop = {window + 40 * j + d for d in range(j)} | {window + 150 + 7 * j}
            keep = [i for i in range(len(s)) if i not in drop]
            data[sym] = Series(np.asarray(s.open_ms)[keep], *(tuple(col[i] for i in keep)
                                                              for col in (s.open, s.high, s.low, s.close, s.volume)))
    return data


def table_digests(db: Path) -> dict[str, list[object]]:
    """{table: [row count, SHA-256 of its rows (no run_id) sorted by repr]} for every table of the log."""
    out: dict[str, list[object]] = {}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            if table in SKIPPED_TABLES or table in ADDED_TABLES or table.startswith("sqlite_"):
                continue
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                    if r[1] != "run_id" and r[1] not in ADDED_COLUMNS.get(table, ())]
            rows = sorted(repr(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table}"))
            h = hashlib.sha256()
            for r in rows:
                h.update(r.encode())
                h.update(b"\n")
            out[table] = [len(rows), h.hexdigest()]
    return out


def run_case(name: str, folder: Path) -> dict[str, list[object]]:
    """Backtest case ``name`` into a trade log in ``folder``; its table digests."""
    from bot.config import Settings
    from bot.runs.backtest import run_backtest

    n, window, bars, seed, gaps, overrides = CASES[name]
    data = market(n, window, bars, seed, gaps)
    db = folder / f"{name}.sqlite"
    settings = Settings().with_overrides(run={"db": str(db), "id": name},
                                         market={"symbols": list(data), "window": window}, **overrides)
    asyncio.run(run_backtest(settings, data, START_MS + window * 3_600_000, commit_every=64))
    return table_digests(db)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {FIXTURE.relative_to(HERE)}")
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as tmp:
        digests = {name: run_case(name, Path(tmp)) for name in args.cases}
    text = json.dumps(digests, indent=1, sort_keys=True) + "\n"
    if args.write:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
