"""A progress bar for a daemon run of known length (``bot demo --bars N``), read from its trade log.

The daemon is not told about the bar: a poller counts the run's equity marks (one per decided bar)
through a read-only connection, so nothing in the engine's path changes.  Shown only on a terminal.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bot.store.files import read_only

T = TypeVar("T")
B = TypeVar("B", bound="Bars")


class Bars:
    """A rich ``Progress`` the subclass builds in ``self.progress``, started and stopped as a context manager
    (the backtest's, the sweep's, training's and the download's bars)."""

    progress: Progress

    def __enter__(self: B) -> B:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def bars_decided(db: str | Path, run_id: str) -> int:
    """Bars of ``run_id`` in the trade log so far (0 while it does not exist yet)."""
    try:
        with closing(read_only(db, timeout=0.5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM equity WHERE run_id = ?", (run_id,)).fetchone()[0])
    except sqlite3.Error:
        return 0


async def with_progress(work: Awaitable[T], db: str | Path, run_id: str, total: int, label: str = "bars",
                        interval_s: float = 0.2, console: Console | None = None) -> T:
    """Await ``work`` while a bar shows the run's decided bars out of ``total``."""
    console = console or Console(stderr=True)
    task = asyncio.ensure_future(work)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal, transient=False) as progress:
        bar = progress.add_task(label, total=total)
        while not task.done():
            await asyncio.wait({task}, timeout=interval_s)
            progress.update(bar, completed=await asyncio.to_thread(bars_decided, db, run_id))
    return task.result()


__all__ = ["with_progress", "bars_decided", "Bars"]
