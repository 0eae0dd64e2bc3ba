"""The demo's progress bar: counts a run's decided bars from its trade log, drawn on a terminal only."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from bot.cli.progress import bars_decided, with_progress
from bot.events import EquityMarked
from bot.store.trade_store import BarRecord, TradeStore


def bar(bar_ms: int, cash: str, equity: str) -> BarRecord:
    """A bar with nothing but its equity mark."""
    return BarRecord(bar_ms=bar_ms, candles=(), forecasts=(), decisions=(), orders=(), fills=(), cancelled=(),
                     equity=EquityMarked(bar_ms, Decimal(cash), Decimal(equity), ()))


@pytest.mark.asyncio
async def test_the_bar_follows_the_trade_log(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    assert bars_decided(db, "r") == 0          # no file yet
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)

    async def work() -> str:
        async with await TradeStore.open(db) as store:
            await store.begin_run("r", "paper", "{}", "cfg", "test", 0)
            for i in range(3):
                await store.write_bar("r", bar(1_704_067_200_000 + i * 3_600_000, "10000", "10000"))
                await asyncio.sleep(0.05)
        return "done"

    assert await with_progress(work(), db, "r", 3, label="demo bars", interval_s=0.01, console=console) == "done"
    assert bars_decided(db, "r") == 3 and bars_decided(db, "other") == 0
    assert "demo bars" in out.getvalue() and "3/3" in out.getvalue()


@pytest.mark.asyncio
async def test_nothing_is_drawn_off_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()

    async def work() -> int:
        return 1

    assert await with_progress(work(), tmp_path / "none.sqlite", "r", 5, console=Console(file=out)) == 1
    assert out.getvalue() == ""
