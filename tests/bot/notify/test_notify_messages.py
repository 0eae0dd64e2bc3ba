"""BarWatcher: which decided bars become which notifications (pure, no I/O)."""

from __future__ import annotations

import math
from decimal import Decimal

from bot.config.notify import EVENTS
from bot.events import OrderFilled, Side
from bot.notify.messages import BarWatcher, Notification
from strategies.events import Forecast

H = 3_600_000
DAY0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC


def fill(bar_ms: int, fee: str = "1.25", side: Side = Side.BUY) -> OrderFilled:
    return OrderFilled(f"r:{bar_ms - H}:BTC/USDT", "BTC/USDT", bar_ms - H, bar_ms, side, Decimal("0.0125"),
                       Decimal("42000.5"), Decimal(fee))


def forecast(bar_ms: int, alarm: str = "") -> Forecast:
    return Forecast("BTC/USDT", bar_ms, 0.0, 0.01, "baseline", alarm=alarm, skill=math.nan)


def watcher(events: tuple[str, ...] = EVENTS, **kw: object) -> tuple[BarWatcher, list[Notification]]:
    got: list[Notification] = []
    return BarWatcher("r", got.append, events, **kw), got  # type: ignore[arg-type]


def test_fills_state_changes_and_alarms_are_announced_once() -> None:
    w, got = watcher()
    w.bar(DAY0 + H, [fill(DAY0 + H)], Decimal(10000), "ACTIVE", "", [forecast(DAY0 + H)])
    w.bar(DAY0 + 2 * H, [], Decimal(9000), "REDUCING", "drawdown 10 %", [forecast(DAY0 + 2 * H, "since bar x")])
    w.bar(DAY0 + 3 * H, [], Decimal(9000), "REDUCING", "drawdown 10 %", [forecast(DAY0 + 3 * H, "since bar x")])
    w.bar(DAY0 + 4 * H, [], Decimal(9000), "ACTIVE", "cooldown over", [forecast(DAY0 + 4 * H)])
    assert [n.kind for n in got] == ["fills", "state", "alarm", "state", "alarm"]
    f = got[0]
    assert f.text == ("[r] 1 fill(s) at 2024-01-01 01:00 UTC: buy 0.0125 BTC/USDT at 42,000.5 fee 1.2500; "
                      "equity 10,000.00")
    assert f.data["fills"][0]["price"] == "42000.5" and f.data["equity"] == "10000"
    assert f.payload()["time"] == "2024-01-01 01:00 UTC" and f.payload()["bar_ms"] == DAY0 + H
    assert got[1].data == {"previous": "ACTIVE", "state": "REDUCING", "reason": "drawdown 10 %"}
    assert got[2].data["active"] is True and got[4].data["active"] is False


def test_an_alarm_active_at_start_and_the_resumed_state_are_not_announced_again() -> None:
    w, got = watcher(state="HALTED", alarms=[forecast(DAY0, "since bar 1")])
    w.bar(DAY0 + H, [], Decimal(1), "HALTED", "x", [forecast(DAY0 + H, "since bar 1")])
    assert got == []


def test_daily_summary_at_the_first_bar_of_the_next_utc_day() -> None:
    w, got = watcher(events=("daily",))
    w.bar(DAY0, [], Decimal(10000), "ACTIVE", "", [])               # 00:00: a whole day starts
    w.bar(DAY0 + H, [fill(DAY0 + H, "1.5")], Decimal(10100), "ACTIVE", "", [])
    w.bar(DAY0 + 23 * H, [fill(DAY0 + 23 * H, "0.5")], Decimal(10200), "ACTIVE", "", [])
    assert got == []
    w.bar(DAY0 + 24 * H, [fill(DAY0 + 24 * H, "9")], Decimal(10300), "ACTIVE", "", [])
    (d,) = got
    assert d.kind == "daily" and d.bar_ms == DAY0 + 24 * H
    assert d.data == {"day": "2024-01-01", "equity": "10200", "start_equity": "10000", "day_return": 0.02,
                      "fills": 2, "fees": "2.0", "bars": 3, "whole_day": True}
    assert d.text == "[r] daily summary 2024-01-01: equity 10,200.00, return +2.00 %, 2 fill(s), fees 2.0000"
    w.bar(DAY0 + 48 * H, [], Decimal(10506), "ACTIVE", "", [])      # a day later (bars missing between)
    assert got[1].data["start_equity"] == "10200" and got[1].data["equity"] == "10300"
    assert got[1].data["fills"] == 1 and got[1].data["fees"] == "9"


def test_a_session_started_mid_day_says_so_and_events_filter() -> None:
    w, got = watcher(events=("daily", "outage"))
    w.bar(DAY0 + 5 * H, [fill(DAY0 + 5 * H)], Decimal(100), "HALTED", "x", [])
    w.bar(DAY0 + 24 * H, [], Decimal(100), "HALTED", "x", [])
    w.outage_began(DAY0 + 24 * H, "no closed bar for 3900 s")
    assert [n.kind for n in got] == ["daily", "outage"]
    assert "(since this session started)" in got[0].text and got[0].data["whole_day"] is False
