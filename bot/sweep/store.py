"""The sweep's results file (SQLite): one row per finished run, which is what makes a sweep resumable.

Only the driver writes it (workers return their figures), one row per run as it finishes, so an
interrupted sweep loses no finished run and a rerun skips every run whose row says ``ok``.  A failed run's
row keeps its error and is tried again by the next rerun.  ``bot report --db`` recognises the file by its
``sweep_runs`` table and prints the sweep's table.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from bot.store.files import read_only
from bot.sweep.runs import RunSpec, symbol_set_id
from bot.sweep.worker import RunResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweep_runs (
    run_id       TEXT PRIMARY KEY,
    config_id    TEXT NOT NULL,
    params_json  TEXT NOT NULL,      -- [[dotted key, value], ...] of the grid point
    fold         TEXT NOT NULL,
    test         INTEGER NOT NULL,   -- 1: a held-out fold
    symbols      TEXT NOT NULL,      -- symbol set id, e.g. BTC+ETH+XRP
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    error        TEXT NOT NULL,
    seconds      REAL NOT NULL,
    bars         INTEGER NOT NULL,
    net_return   REAL NOT NULL,
    sharpe       REAL NOT NULL,
    max_drawdown REAL NOT NULL,
    fills        INTEGER NOT NULL,
    fees_share   REAL NOT NULL,
    days_json    TEXT NOT NULL,      -- UTC day (ms) of each daily return
    daily_json   TEXT NOT NULL,      -- daily returns
    finished_ms  INTEGER NOT NULL
);
"""


class SweepStore:
    """The results file of one sweep folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path)
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finished(self) -> set[str]:
        """Run ids already done (a failed run is not: a rerun tries it again)."""
        return {r for (r,) in self.conn.execute("SELECT run_id FROM sweep_runs WHERE ok = 1")}

    def record(self, run: RunSpec, result: RunResult) -> None:
        """Keep one run's result, committed at once."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO sweep_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.config_id, json.dumps([list(v) for v in run.values]), run.fold, int(run.test),
                 symbol_set_id(run.symbols), run.start_ms, run.end_ms, int(result.ok), result.error,
                 result.seconds, result.bars, result.net_return, result.sharpe, result.max_drawdown,
                 result.fills, result.fees_share, json.dumps(list(result.day_ms)),
                 json.dumps(list(result.daily)), int(time.time() * 1000)))


def is_sweep_file(path: str | Path) -> bool:
    """Whether ``path`` is a sweep results file (read-only look)."""
    try:
        with closing(read_only(path)) as conn:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sweep_runs'").fetchone() is not None
    except sqlite3.Error:
        return False


def open_read_only(path: str | Path) -> sqlite3.Connection:
    conn = read_only(path)
    conn.row_factory = sqlite3.Row
    return conn


__all__ = ["SweepStore", "is_sweep_file", "open_read_only"]
