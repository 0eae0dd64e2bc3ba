"""Is a file a trade log this code may open, read or create?  Checked before anything is written to it.

The store (:meth:`bot.store.trade_store.TradeStore.open`), ``bot run``, ``bot demo`` and ``bot backtest`` check a log
before the model, the exchange and the feed start; ``bot report``, ``bot status`` and the dashboard check
the schema version of what they read.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from bot.errors import DataError
from bot.store.schema import SCHEMA_VERSION

# Versions the read-only tools (report, status) read as they are; the store migrates them on open.
READABLE_VERSIONS = (1, 2, 3, SCHEMA_VERSION)


def read_only(path: str | Path, **connect: object) -> sqlite3.Connection:
    """A connection that can only read the SQLite file at ``path`` (URI ``mode=ro``, the path quoted: a name with
    ``?``, ``#`` or ``%`` in it opens the right file).  Close it: ``with closing(read_only(p)) as conn``."""
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, **connect)  # type: ignore[arg-type]


def check_schema_version(version: int | None, path: str | Path, readable: tuple[int, ...] = (SCHEMA_VERSION,)) -> None:
    """Raise DataError unless ``version`` is one of the ``readable`` schema versions."""
    if version in readable:
        return
    if version is None:
        raise DataError(f"{path}: not a trade log (its schema_version table is empty)")
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: trade log schema version {version} is newer than this bot understands "
                        f"(version {SCHEMA_VERSION}); upgrade the bot or use another database file")
    raise DataError(f"{path}: unknown trade log schema version {version} (this bot reads version "
                    f"{SCHEMA_VERSION}); use another database file")


def check_trade_log_file(path: Path) -> None:
    """DataError unless this process can create a trade log at ``path`` or write the one there; writes nothing.

    Refused: a missing or read-only folder, a folder or other non-file at ``path``, a file this process
    may not read and write, an empty (0-byte) file, and any file that is not a trade log this code knows
    (another SQLite database, or not a database at all), read through a read-only connection, so it stays
    untouched.  An SQLite file without any table becomes a new log (another process may be creating it).
    """
    folder = path.parent
    if not folder.is_dir():
        raise DataError(f"{path}: cannot open the trade log: folder {folder} does not exist")
    # SQLite creates the -wal and -shm files beside the log, so the folder must be writable either way.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write the trade log: folder {folder} is not writable "
                        "(bot status and bot report can read a log there)")
    if not path.exists():
        return
    if path.is_dir():
        raise DataError(f"{path}: cannot open the trade log: it is a folder, not a file")
    if not path.is_file():
        raise DataError(f"{path}: cannot open the trade log: not a regular file")
    if not os.access(path, os.R_OK | os.W_OK):
        raise DataError(f"{path}: cannot write the trade log: the file is read-only or unreadable to this "
                        "user (bot status and bot report can read a readable one)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: an empty (0-byte) file, not a trade log; remove it to start a new log there")
    try:
        with closing(read_only(path)) as conn:
            tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
                       if "schema_version" in tables else None)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: not a trade log ({exc})") from exc
    if tables and "schema_version" not in tables:
        raise DataError(f"{path}: not a trade log (an SQLite file without a schema_version table); "
                        "it was left as it is")
    if not tables:   # an SQLite file with nothing in it (a log another process is creating): it becomes one
        return
    if version is None or version > SCHEMA_VERSION:
        check_schema_version(version, path)
