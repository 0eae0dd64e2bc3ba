"""Bars are assembled across symbols: complete, superseded by a later bar, or timed out."""

from __future__ import annotations

from decimal import Decimal

from bot.bars.assembly import BarAssembler
from bot.events import Candle

H = 3_600_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]


def c(symbol: str, i: int) -> Candle:
    one = Decimal(1)
    return Candle(symbol, i * H, i * H + H - 1, one, one, one, one, one)


def test_bar_is_emitted_when_every_symbol_reported_in_subscription_order() -> None:
    a = BarAssembler(SYMBOLS)
    assert a.add(c("XRP/USDT", 5), 0.0) == ([], None)
    assert a.add(c("BTC/USDT", 5), 0.1)[0] == []
    ready, _ = a.add(c("ETH/USDT", 5), 0.2)
    assert len(ready) == 1 and ready[0].complete
    assert [x.symbol for x in ready[0].candles] == SYMBOLS
    assert ready[0].received_at == (0.1, 0.2, 0.0)


def test_a_later_bar_releases_an_incomplete_earlier_one() -> None:
    a = BarAssembler(SYMBOLS)
    a.add(c("BTC/USDT", 5), 0.0)
    ready, _ = a.add(c("BTC/USDT", 6), 1.0)
    assert [(r.bar_ms, r.complete) for r in ready] == [(5 * H, False)]
    assert a.pending == 1


def test_timeout_releases_a_bar_and_late_candles_are_dropped_with_reason() -> None:
    a = BarAssembler(SYMBOLS)
    a.add(c("BTC/USDT", 5), 10.0)
    assert a.next_deadline(2.0) == 12.0
    assert a.expire(11.0, 2.0) == []
    ready = a.expire(12.5, 2.0)
    assert len(ready) == 1 and not ready[0].complete
    ready, why = a.add(c("ETH/USDT", 5), 13.0)
    assert ready == [] and "not after the last decided bar" in why


def test_repeated_candle_in_a_pending_bar_is_dropped() -> None:
    a = BarAssembler(SYMBOLS)
    a.add(c("BTC/USDT", 5), 0.0)
    ready, why = a.add(c("BTC/USDT", 5), 0.1)
    assert ready == [] and "repeated" in why
