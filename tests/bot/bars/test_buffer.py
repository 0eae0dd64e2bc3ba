"""Rolling windows: repeats ignored, gaps detected, windows whole only after `length` consecutive bars."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.bars.buffer import Appended, MarketBuffer, RollingWindow
from bot.events import Candle

H = 3_600_000


def candle(i: int, symbol: str = "BTC/USDT", close: str | None = None) -> Candle:
    px = Decimal(close or str(100 + i))
    return Candle(symbol, i * H, i * H + H - 1, px, px + 1, px - 1, px, Decimal(i))


def test_window_becomes_whole_after_length_consecutive_bars() -> None:
    w = RollingWindow(4, H)
    for i in range(3):
        assert w.append(candle(i)) is Appended.APPENDED
        assert not w.is_whole
    w.append(candle(3))
    assert w.is_whole
    assert w.values()[:, 3].tolist() == [100.0, 101.0, 102.0, 103.0]


def test_repeat_and_stale_bars_are_ignored() -> None:
    w = RollingWindow(3, H)
    for i in range(5):
        w.append(candle(i))
    before = w.values().copy()
    assert w.append(candle(4, close="999")) is Appended.REPEAT
    assert w.append(candle(2)) is Appended.STALE
    assert np.array_equal(w.values(), before)


def test_gap_restarts_the_window_until_whole_again() -> None:
    w = RollingWindow(3, H)
    for i in range(5):
        w.append(candle(i))
    assert w.append(candle(7)) is Appended.GAP
    assert not w.is_whole and w.bars_missing == 2
    w.append(candle(8))
    assert not w.is_whole
    w.append(candle(9))
    assert w.is_whole
    assert w.values()[:, 3].tolist() == [107.0, 108.0, 109.0]


@settings(max_examples=50, deadline=None)
@given(length=st.integers(1, 20), n=st.integers(1, 200))
def test_values_are_always_the_last_length_bars(length: int, n: int) -> None:
    w = RollingWindow(length, H)
    for i in range(n):
        w.append(candle(i))
    assert w.is_whole == (n >= length)
    if n >= length:
        assert w.values()[:, 3].tolist() == [float(100 + i) for i in range(n - length, n)]
        assert not w.values().flags.writeable


def test_market_buffer_batches_only_whole_windows_at_the_bar() -> None:
    b = MarketBuffer(["BTC/USDT", "ETH/USDT", "XRP/USDT"], 3, H)
    for i in range(3):
        b.append(candle(i, "BTC/USDT"))
        b.append(candle(i, "ETH/USDT"))
    b.append(candle(1, "XRP/USDT"))
    b.append(candle(2, "XRP/USDT"))
    batch = b.batch(2 * H)
    assert batch.symbols == ("BTC/USDT", "ETH/USDT")
    assert batch.windows.shape == (2, 3, 5)
    assert b.batch(5 * H).symbols == ()
