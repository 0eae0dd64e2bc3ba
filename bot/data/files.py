"""The files of ``bot download``: one CSV per symbol that is always valid, and a journal that makes it resumable.

Two files per target ``DIR/BTCUSDT-1h.csv[.gz]``:

* the **target**, in the format :mod:`bot.feeds.replay.csvdata` reads.  It is only
  ever replaced whole — written next to it as ``BTCUSDT-1h.tmp[.gz]``, fsynced,
  checked with :func:`~bot.feeds.replay.csvdata.load_ohlcv_csv`, then renamed
  over it (``os.replace`` is atomic) — so at every instant it is either the old
  file or the new one, never half of each.  Existing rows are copied byte for
  byte; new rows are appended after them.
* the **journal** ``BTCUSDT-1h[.gz].partial``: the rows downloaded in this run, a
  plain CSV appended one page at a time, each page flushed and fsynced.  A crash
  can tear at most its last line; that torn tail is dropped when it is read back.

A download merges the journal into the target when it finishes, fails or is
interrupted (Ctrl-C); after a ``kill -9`` the journal stays, and the next run
merges it before it continues.  The journal is only ever written by this module,
so repairing its torn tail never touches user data; an existing target that does
not load is refused, never overwritten.  Neither helper name matches the
``*-1h.csv*`` pattern ``bot train --data DIR`` looks for.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from pathlib import Path
from typing import IO

import numpy as np

from bot.data.pages import fmt_ms, rows_to_csv
from bot.errors import DataError
from bot.feeds.replay.csvdata import HEADER, Row, Series, _parse_rows, load_ohlcv_csv

log = logging.getLogger("bot.download_files")   # the name it logged under as bot/download_files.py

HEADER_LINE = ",".join(HEADER) + "\n"
KNOWN_TAIL_ROWS = 1000  # rows of the target kept to check a page that overlaps them


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TargetFile:
    """One symbol's CSV target and its journal; see the module docstring.

    Use :meth:`open` once, then :meth:`append` pages, then :meth:`finish`
    (in a ``finally``: it is what turns an interrupted download into a valid file).
    """

    def __init__(self, target: Path, timeframe_ms: int) -> None:
        self.target = target
        self.timeframe_ms = timeframe_ms
        stem = target.name.replace(".csv", "", 1)  # BTCUSDT-1h or BTCUSDT-1h.gz
        self.journal = target.with_name(stem + ".partial")
        self.tmp = target.with_name(target.name.replace(".csv", ".tmp", 1))  # BTCUSDT-1h.tmp[.gz]
        self.gzip = target.name.endswith(".gz")
        self.first_ms: int | None = None  # first and last open time in the target or journal
        self.last_ms: int | None = None
        self.rows = 0  # rows in the target plus those appended
        self.tail: dict[int, Row] = {}  # the newest rows, for checking an overlapping page
        self._journal: IO[str] | None = None
        self._pending = 0  # rows in the journal not yet merged

    # -- start -------------------------------------------------------------------------

    def open(self) -> None:
        """Validate the target (refusing a corrupt one), merge a journal an earlier run left, note where to resume."""
        self.tmp.unlink(missing_ok=True)  # a merge that died before its rename; the target is intact
        existing = self._load_target()
        if self.journal.exists():
            existing = self._recover_journal(existing)
        if existing is not None and len(existing):
            self._note(existing.slice(-KNOWN_TAIL_ROWS), int(existing.open_ms[0]), len(existing))

    def _load_target(self) -> Series | None:
        if not self.target.exists():
            return None
        # DataError names the file, the line and the problem; the file is left as it is.
        return load_ohlcv_csv(self.target, self.timeframe_ms)

    def _note(self, tail: Series, first_ms: int, rows: int) -> None:
        self.first_ms, self.rows = first_ms, rows
        self.last_ms = int(tail.open_ms[-1])
        self.tail = {r[0]: r for r in tail.rows()}

    def _read_journal(self) -> Series | None:
        """The journal's complete rows (a torn last line, the mark of a crash mid-write, is dropped)."""
        data = self.journal.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            log.warning("%s: dropping a torn last line of %d bytes (an interrupted write)", self.journal,
                        len(data) - cut)
        try:
            lines = data[:cut].decode("ascii").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.journal}: not a download journal ({exc}); delete it to start over") from exc
        if not lines:
            return None  # torn before its header was complete
        if lines[0] != HEADER_LINE.strip():
            raise DataError(f"{self.journal}: line 1: not a download journal header; delete it to start over")
        raw = [line.split(",") for line in lines[1:]]
        if not raw:
            return None
        return _parse_rows(str(self.journal), raw, list(range(2, len(raw) + 2)), self.timeframe_ms)

    def _recover_journal(self, existing: Series | None) -> Series | None:
        """Merge what an interrupted run left in the journal into the target; return the target's rows."""
        rows = self._read_journal()
        if rows is None or not len(rows):
            self.journal.unlink()
            return existing
        first, last = int(rows.open_ms[0]), int(rows.open_ms[-1])
        end = int(existing.open_ms[-1]) if existing is not None else None
        if existing is not None and end is not None and last <= end:
            # A crash between the merge's rename and the journal's removal: the target holds them already.
            idx = np.searchsorted(existing.open_ms, rows.open_ms)
            same = all(i < len(existing) and existing.row(int(i)) == r
                       for i, r in zip(idx, rows.rows(), strict=True))
            if not same:
                raise DataError(f"{self.journal} holds bars that differ from {self.target}; "
                                "delete the journal (or the target) to go on")
            log.info("%s: already merged into %s; removed", self.journal, self.target)
            self.journal.unlink()
            return existing
        if end is not None and first <= end:
            raise DataError(f"{self.journal} (from {fmt_ms(first)}) does not continue {self.target} "
                            f"(up to {fmt_ms(end)}); delete the journal to go on")
        log.warning("%s: merging %d bars (%s .. %s) left by an interrupted download", self.target, len(rows),
                    fmt_ms(first), fmt_ms(last))
        self._pending = len(rows)
        self._merge()
        return load_ohlcv_csv(self.target, self.timeframe_ms)

    # -- pages -------------------------------------------------------------------------

    def append(self, rows: tuple[Row, ...] | list[Row]) -> None:
        """Append a page of new rows (ascending, after :attr:`last_ms`) to the journal, durably."""
        if not rows:
            return
        if self._journal is None:
            self._journal = open(self.journal, "w", encoding="ascii", newline="")  # noqa: SIM115 (closed in finish)
            self._journal.write(HEADER_LINE)
        # One write of whole lines, then flush and fsync: after a crash the journal holds whole pages,
        # at worst with the last line torn, which _read_journal drops.
        self._journal.write(rows_to_csv(rows))
        self._journal.flush()
        os.fsync(self._journal.fileno())
        if self.first_ms is None:
            self.first_ms = rows[0][0]
        self.last_ms = rows[-1][0]
        self.rows += len(rows)
        self._pending += len(rows)
        self.tail = {r[0]: r for r in rows}

    # -- end ---------------------------------------------------------------------------

    def finish(self) -> None:
        """Merge this run's rows into the target (atomically) and remove the journal; a no-op if none came."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._pending:
            self._merge()
        elif self.journal.exists():
            self.journal.unlink()

    def _merge(self) -> None:
        """target + journal rows → tmp (fsynced, validated) → renamed over the target; journal removed."""
        try:
            with open(self.tmp, "wb") as raw:
                out: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb") if self.gzip else raw  # type: ignore[assignment]
                try:
                    self._copy_target(out)
                    self._copy_journal(out)
                finally:
                    if out is not raw:
                        out.close()  # writes the gzip trailer; the file itself stays open for fsync
                raw.flush()
                os.fsync(raw.fileno())
            load_ohlcv_csv(self.tmp, self.timeframe_ms)  # never put a file in place that would not load
            os.replace(self.tmp, self.target)
            _fsync_dir(self.target.parent)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.journal.unlink()
        self._pending = 0

    def _copy_target(self, out: IO[bytes]) -> None:
        if not self.target.exists():
            out.write(HEADER_LINE.encode("ascii"))
            return
        opener = gzip.open if self.gzip else open
        with opener(self.target, "rb") as src:  # type: ignore[operator]
            last = b"\n"
            for chunk in iter(lambda: src.read(io.DEFAULT_BUFFER_SIZE * 16), b""):
                out.write(chunk)
                last = chunk[-1:]
        if last != b"\n":
            out.write(b"\n")  # a user's file without a final newline: the next row must start a new line

    def _copy_journal(self, out: IO[bytes]) -> None:
        """Copy the journal's complete lines after its header (a torn tail is left out)."""
        with open(self.journal, "rb") as src:
            src.readline()  # the header
            rest = b""
            for chunk in iter(lambda: src.read(1 << 20), b""):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                out.write(data[:cut])
                rest = data[cut:]
