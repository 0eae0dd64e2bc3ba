"""The trade log written from a child process, so that SQLite's work overlaps the engine's (backtests).

    engine ── BarRecord ──► bar_rows (here) ── rows over a pipe (marshal) ──► child: TradeStore.write_rows

A backtest decides bars far faster than a live feed delivers them, and writing its log is a large part
of its time; on one thread the engine waits for every commit.  :class:`BarWriter` stands in for the
:class:`~bot.store.trade_store.TradeStore` the engine writes bars to: ``write_bars`` turns the records into plain
rows (:func:`~bot.store_rows.bar_rows`: strings, numbers and None, so a batch serialises fast) and hands
them to a child process that commits them with the same ``TradeStore.write_rows`` transaction a direct
write uses — the same rows, the same "a bar is written whole or not at all", the same file.

Why a process and not a thread: the sqlite3 module lets go of the GIL inside every row's step and must
win it back before binding the next row, so a writer thread beside a busy engine thread waits a GIL
switch interval per row.

What a crash costs is unchanged: batches are committed in order, each in one transaction, so the log
always holds a prefix of the run, whole bars only.  The child stops writing at its first failure (a later
batch would leave a hole) and the failure is raised, as a :class:`~bot.errors.DataError`, by the next
``write_bars``, ``drain`` or ``close`` in this process.  If this process dies, the child finishes the
batch it holds and exits at the end of the pipe.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import bot
from bot.errors import DataError
from bot.store.rows import BarRecord, BarRows, bar_rows, check_unique_bars
from bot.store.trade_store import TradeStore

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0


class BarWriter:
    """Writes batches of decided bars to ``store``'s file from a child process; everything else goes to ``store``."""

    def __init__(self, store: TradeStore) -> None:
        self.store = store
        self._pipe: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._failure: str | None = None
        self.sent = 0      # bars handed to the child

    async def start(self) -> BarWriter:
        # A fresh interpreter (``python -m bot.store.writer``), not multiprocessing: a fork would copy this
        # process's event loop and threads, and a spawn re-imports the caller's main script.
        ours, theirs = socket.socketpair()
        root = str(Path(bot.__file__).resolve().parents[1])   # the child imports this very code
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            self._process = subprocess.Popen([sys.executable, "-m", "bot.store.writer", str(self.store.path),
                                              str(theirs.fileno())], pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        self._pipe = Connection(ours.detach())
        try:
            reply = await asyncio.to_thread(self._recv, _START_TIMEOUT_S)
        except (EOFError, OSError) as exc:
            reply = ("failed", f"it exited ({exc or 'no answer'})")
        if reply != ("ready",):
            await self._stop()
            raise DataError(f"{self.store.path}: the trade-log writer did not start: {reply[-1]}")
        return self

    async def write_bars(self, run_id: str, records: Sequence[BarRecord]) -> int:
        """Queue ``records`` to be written in one transaction; raise DataError if an earlier batch failed."""
        self._raise_failure()
        check_unique_bars(run_id, records)
        rows = [bar_rows(run_id, r) for r in records]
        try:
            # Blocks while the child is still writing the batch before the last: two batches in flight at most.
            self._open_pipe().send_bytes(_encode(("rows", run_id, [tuple(r) for r in rows])))
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise DataError(f"{self.store.path}: the trade-log writer is gone ({exc})") from exc
        self.sent += len(rows)
        return len(rows)

    async def drain(self) -> None:
        """Wait until every queued batch is committed; DataError if one failed."""
        self._raise_failure()
        try:
            self._open_pipe().send_bytes(_encode(("sync",)))
            reply = await asyncio.to_thread(self._recv, None)
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise DataError(f"{self.store.path}: the trade-log writer is gone ({exc})") from exc
        if reply[0] == "failed":
            self._failure = reply[1]
            self._raise_failure()

    async def close(self) -> None:
        """Commit what is queued and stop the child; DataError if a batch failed (the child stops anyway)."""
        try:
            if self._pipe is not None and self._failure is None:
                await self.drain()
        finally:
            await self._stop()

    # The engine records outages through its store: they go to the parent's connection, after the queue.
    async def record_outage(self, run_id: str, started_ms: int, ended_ms: int | None, last_bar_ms: int | None,
                            reason: str, flattened: bool) -> None:
        await self.drain()
        await self.store.record_outage(run_id, started_ms, ended_ms, last_bar_ms, reason, flattened)

    async def end_outage(self, run_id: str, started_ms: int, ended_ms: int) -> None:
        await self.drain()
        await self.store.end_outage(run_id, started_ms, ended_ms)

    def _open_pipe(self) -> Connection:
        if self._pipe is None:
            raise DataError(f"{self.store.path}: the trade-log writer is not running")
        return self._pipe

    def _raise_failure(self) -> None:
        pipe = self._pipe
        # The child reports a failure as soon as it happens; pick it up without waiting.
        if self._failure is None and pipe is not None and pipe.poll():
            reply = pipe.recv()
            if reply[0] == "failed":
                self._failure = reply[1]
        if self._failure is not None:
            raise DataError(self._failure)

    def _recv(self, timeout_s: float | None) -> tuple[str, ...]:
        pipe = self._open_pipe()
        if timeout_s is not None and not pipe.poll(timeout_s):
            return ("timeout", f"no answer in {timeout_s:.0f} s")
        reply: tuple[str, ...] = pipe.recv()
        # A failure report may precede the answer asked for.
        if reply[0] == "failed" and self._failure is None:
            self._failure = reply[1]
            if pipe.poll(0):
                pipe.recv()
        return reply if self._failure is None else ("failed", self._failure)

    async def _stop(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.send_bytes(_encode(None))
            except (BrokenPipeError, OSError):
                pass
            pipe.close()
        if self._process is not None:
            process, self._process = self._process, None
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                log.error("trade-log writer did not stop; killing it")
                process.kill()
                await asyncio.to_thread(process.wait)


def _encode(message: object) -> bytes:
    """Messages to the child: marshal, not pickle — 5x faster on a batch of row tuples (plain str, int,
    float and None), and safe here because both ends are the same interpreter (``sys.executable``)."""
    return marshal.dumps(message)


def _serve(path: str, fd: int) -> None:
    """The child: write each batch received, in order, until told to stop or the parent is gone."""
    # Ctrl-C (or a service manager's SIGTERM) reaches the whole process group; the parent answers it by
    # committing what it decided, which this process must live to write.  Its life is tied to the parent's
    # instead: it ends when the parent says so or when the parent's end of the pipe closes.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    asyncio.run(_serve_async(Path(path), Connection(fd)))


async def _serve_async(path: Path, pipe: Connection) -> None:
    try:
        store = await TradeStore.open(path)
    except Exception as exc:   # noqa: BLE001 - reported to the parent, which raises it
        pipe.send(("failed", f"{path}: cannot open the trade log: {exc}"))
        return
    failure: str | None = None
    try:
        pipe.send(("ready",))
        while True:
            try:
                message = marshal.loads(pipe.recv_bytes())
            except EOFError:   # the parent is gone: what it sent is written, nothing more will come
                return
            if message is None:
                return
            if message[0] == "sync":
                pipe.send(("failed", failure) if failure else ("synced",))
            elif failure is None:   # after a failure nothing more is written: the log must stay a prefix
                _, run_id, rows = message
                try:
                    await store.write_rows(run_id, [BarRows(*r) for r in rows])
                except Exception as exc:   # noqa: BLE001 - any failure stops the writing and is reported
                    failure = str(exc) if isinstance(exc, DataError) else f"{path}: {type(exc).__name__}: {exc}"
                    pipe.send(("failed", failure))
    finally:
        await store.close()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
