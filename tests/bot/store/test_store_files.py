"""Trade-log files at start: anything that is not a writable trade log is refused with one line before a
byte of it is written, and the read-only tools read a log they may not write."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.errors import DataError
from bot.reporting.run_report import load_report
from bot.reporting.status import load_status
from bot.store.trade_store import TradeStore

T0 = 1_704_067_200_000
AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes files whatever their mode")


def foreign_database(path: Path) -> bytes:
    """Another program's SQLite file (rollback journal, one table); returns its bytes."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    return path.read_bytes()


async def new_log(path: Path) -> None:
    async with await TradeStore.open(path) as store:
        await store.begin_run("r1", "paper", '{"run":{}}', "h", "test", T0)


@pytest.mark.asyncio
async def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    before = foreign_database(path)
    with pytest.raises(DataError, match="not a trade log"):
        await TradeStore.open(path)
    assert path.read_bytes() == before                       # not switched to WAL, nothing added
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


@pytest.mark.asyncio
async def test_a_zero_byte_file_is_refused_not_made_a_log(tmp_path: Path) -> None:
    path = tmp_path / "trades.sqlite"
    path.touch()
    with pytest.raises(DataError, match=r"empty \(0-byte\) file, not a trade log; remove it"):
        await TradeStore.open(path)
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["trades.sqlite"]


@pytest.mark.asyncio
async def test_a_folder_in_place_of_the_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trades.sqlite"
    path.mkdir()
    with pytest.raises(DataError, match="it is a folder, not a file"):
        await TradeStore.open(path)
    assert list(path.iterdir()) == []


@pytest.mark.asyncio
async def test_a_begin_run_the_database_refuses_is_a_data_error(tmp_path: Path) -> None:
    """A write refused under begin_run (read-only file, full disk) is a DataError naming the file, not an
    sqlite3 traceback; a trigger stands in for the refusal, which works as root too."""
    path = tmp_path / "trades.sqlite"
    async with await TradeStore.open(path):
        pass
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'refused'); END")
    async with await TradeStore.open(path) as store:
        with pytest.raises(DataError, match=r"trades\.sqlite: cannot start run 'r1' in the trade log: refused"):
            await store.begin_run("r1", "paper", '{"run":{}}', "h", "test", T0)


@AS_ROOT
@pytest.mark.asyncio
async def test_a_read_only_log_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "trades.sqlite"
    await new_log(path)
    path.chmod(0o444)
    with pytest.raises(DataError, match="the file is read-only"):
        await TradeStore.open(path)


@AS_ROOT
@pytest.mark.asyncio
async def test_an_unreadable_file_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "trades.sqlite"
    await new_log(path)
    path.chmod(0o000)
    with pytest.raises(DataError, match="read-only or unreadable"):
        await TradeStore.open(path)


@AS_ROOT
@pytest.mark.asyncio
async def test_status_and_report_read_a_log_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    path = folder / "trades.sqlite"
    await new_log(path)
    folder.chmod(0o555)
    try:
        assert load_status(path).run_id == "r1"
        assert load_report(path).run_id == "r1"
        with pytest.raises(DataError, match="folder .* is not writable"):
            await TradeStore.open(path)
    finally:
        folder.chmod(0o755)


@pytest.mark.asyncio
async def test_status_and_report_leave_a_foreign_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    before = foreign_database(path)
    with pytest.raises(DataError, match="not a trade log"):
        load_status(path)
    with pytest.raises(DataError, match="not a trade log"):
        load_report(path)
    assert path.read_bytes() == before


@pytest.mark.asyncio
async def test_readers_open_the_log_read_only(tmp_path: Path) -> None:
    """The readers' connection refuses writes outright (``mode=ro``), not only by a pragma."""
    from bot.reporting.run_report import _connect_read_only

    path = tmp_path / "trades.sqlite"
    await new_log(path)
    with closing(_connect_read_only(path)) as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("PRAGMA query_only = OFF")
            conn.execute("DELETE FROM runs")


def test_read_only_opens_the_named_file_whatever_its_name_and_never_writes(tmp_path: Path) -> None:
    """``#``, ``?`` and ``%20`` in a path are part of the name, not of the URI (an unquoted ``file:`` URI
    would open another file, or a fresh empty one)."""
    import sqlite3
    from contextlib import closing

    from bot.store.files import read_only

    folder = tmp_path / "runs #1?%20"
    folder.mkdir()
    db = folder / "t.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (42)")
        conn.commit()
    with closing(read_only(db)) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO t VALUES (1)")
    assert sorted(p.name for p in folder.iterdir()) == ["t.sqlite"]
