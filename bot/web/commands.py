"""Operator commands: written to the trade log's ``commands`` table by the web app, taken by the engine.

The web app never touches trading state: it appends a row (a short-lived read-write connection that inserts one
row and closes); the engine reads the rows not yet taken at its next bar, applies them through the risk manager's
hooks, and marks them taken in that bar's transaction (:mod:`bot.runs.engine`).

    stop-entries   no new exposure: only orders that shrink positions pass
    flatten        HALTED at the next bar (every position closed) and no new exposure afterwards
    resume         lift both (a HALTED state the operator did not cause, such as a drawdown, stays)
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from bot.errors import DataError
from bot.store.trade_store import BUSY_TIMEOUT_MS

COMMANDS = ("stop-entries", "flatten", "resume")
NOTE_MAX = 200


class NoCommandsTable(DataError):
    """The trade log was written by a daemon older than the commands table."""


def submit_command(db_path: str | Path, run_id: str, command: str, note: str = "", now_ms: int | None = None) -> int:
    """Append ``command`` for ``run_id``; returns its id.  ValueError for an unknown command, DataError for a
    log without the run or without the commands table."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}")
    path = Path(db_path)
    if not path.is_file():
        raise DataError(f"{path}: no such trade log")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True,
                                 timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "commands" not in tables:
            raise NoCommandsTable(f"{path}: this trade log has no commands table (an older daemon writes it); "
                                  "run the daemon of this version on it first")
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise DataError(f"{path}: no run {run_id!r}")
        with conn:
            cursor = conn.execute("INSERT INTO commands (run_id, created_ms, command, note) VALUES (?, ?, ?, ?)",
                                  (run_id, now, command, note[:NOTE_MAX]))
        return int(cursor.lastrowid or 0)
