"""Rejection counts: the tally's snapshots, their rows committed with a bar, and the assembler's kinds."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from test_store import BTC, ETH, T0, H, bar, new_store, query

from bot.bars.assembly import BarAssembler
from bot.events import Candle
from bot.store.rejections import RejectionTally


def test_changed_gives_the_rows_that_grew_with_their_session_totals() -> None:
    feed_counts: dict[str, int] = {"malformed JSON": 2}
    tally = RejectionTally(3, clock=lambda: 1.5)
    tally.follow("websocket", feed_counts, {"malformed JSON": "malformed JSON: x"})
    tally.count("websocket", "duplicate kline", "duplicate kline: bar 1")
    first = {(r.source, r.reason): (r.session_no, r.count, r.last_ms) for r in tally.changed()}
    assert first == {("websocket", "malformed JSON"): (3, 2, 1500), ("websocket", "duplicate kline"): (3, 1, 1500)}
    assert tally.changed() == ()                     # nothing grew
    feed_counts["malformed JSON"] = 5
    assert [(r.reason, r.count) for r in tally.changed()] == [("malformed JSON", 5)]
    assert [(r.reason, r.count) for r in tally.rows()] == [("duplicate kline", 1), ("malformed JSON", 5)]


@pytest.mark.asyncio
async def test_counts_are_committed_with_the_bar_and_never_go_down(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    store = await new_store(path)
    tally = RejectionTally(1)
    tally.count("websocket", "implausible kline: confirmed by REST", "bar 0 of BTC/USDT: close 9e13")
    older = tally.changed()
    tally.count("websocket", "implausible kline: confirmed by REST", "bar 1 of BTC/USDT: close 9e13")
    assert await store.write_bar("r1", replace(bar(T0, "1000"), rejections=tally.changed()))
    await store.write_rejections("r1", older)        # an older snapshot written later does not lower it
    assert query(path, "SELECT session_no, source, reason, count FROM rejections") == [
        (1, "websocket", "implausible kline: confirmed by REST", 2)]
    await store.close()


def c(symbol: str, i: int, close: str = "1") -> Candle:
    one, px = Decimal(1), Decimal(close)
    return Candle(symbol, i * H, i * H + H - 1, one, max(one, px), min(one, px), px, one)


def test_the_assembler_names_duplicates_conflicts_late_and_out_of_order_klines() -> None:
    a = BarAssembler([BTC, ETH])
    a.add(c(BTC, 5), 0.0)
    assert a.add(c(BTC, 5), 0.1)[1].startswith("duplicate kline: ")
    assert a.add(c(BTC, 5, "2"), 0.2) == ([], None)          # a different version: held with the bar
    assert a.add(c(BTC, 5), 0.3)[1].startswith("duplicate kline: ")   # a copy of a version already held
    (ready,), _ = a.add(c(ETH, 5), 0.4)
    assert ready.candles[0] == c(BTC, 5)   # the first version, flagged: the engine settles it through REST
    assert [(s, [x.close for x in v]) for s, v in ready.conflicts] == [(BTC, [Decimal(1), Decimal(2)])]
    assert a.add(c(BTC, 5), 1.0)[1].startswith("duplicate kline: ")
    assert a.add(c(BTC, 5, "3"), 1.1)[1].startswith("conflicting klines: ")   # too late to settle
    assert a.add(c(BTC, 4), 1.2)[1].startswith("out-of-order kline: ")
    b = BarAssembler([BTC, ETH])
    b.add(c(BTC, 5), 0.0)
    b.expire(10.0, 1.0)
    assert b.add(c(ETH, 5), 11.0)[1].startswith("late kline: ")
