"""What is worth telling the operator, read from each decided bar: pure, no I/O.

:class:`BarWatcher` is handed every bar the engine decides (the same :class:`~bot.store.rows.BarRecord`
the trade log gets) and the watchdog's outages, and turns them into :class:`Notification` values:

* ``fills``  — the bar's fills, one message per bar that has any;
* ``state``  — the trading state changed (ACTIVE / REDUCING / HALTED), with the reason;
* ``outage`` — the watchdog saw no bar for too long, and when bars came back;
* ``alarm``  — a forecast's skill-monitor alarm turned on (``Forecast.alarm`` non-empty; see
  :mod:`strategies.assessed`), and when skill was shown again;
* ``daily``  — at the first bar of a new UTC day, the day before: equity at its last close, the day's
  return, fills and fees.

Each notification has a one-line ``text`` for people (Telegram) and ``data`` for programs (the
webhook's JSON); money in ``data`` is the exact decimal string, rounded only in ``text``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.events import OrderFilled
from bot.numfmt import sig
from bot.timefmt import utc_day, utc_minute
from strategies.events import Forecast

if TYPE_CHECKING:
    from bot.store.rows import BarRecord

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Notification:
    """One message: ``kind`` is one of :data:`bot.config.notify.EVENTS`; ``bar_ms`` the bar it is about."""

    kind: str
    run_id: str
    bar_ms: int | None
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"kind": self.kind, "run": self.run_id, "bar_ms": self.bar_ms, "time": utc_minute(self.bar_ms)
                if self.bar_ms is not None else None, "text": self.text, "data": dict(self.data)}


def money(value: Decimal, places: int = 2) -> str:
    """A quote-asset amount rounded for reading (``10,012.35``)."""
    return f"{value:,.{places}f}"


def qty_text(value: Decimal) -> str:
    """A quantity without trailing zeros (``0.0125``)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fill_line(f: OrderFilled) -> str:
    what = "" if f.reason == "signal" else f" ({f.reason})"
    return f"{f.side.value} {qty_text(f.qty)} {f.symbol} at {sig(f.price)} fee {money(f.fee, 4)}{what}"


def fill_data(f: OrderFilled) -> dict[str, Any]:
    return {"order_id": f.order_id, "symbol": f.symbol, "side": f.side.value, "qty": str(f.qty),
            "price": str(f.price), "fee": str(f.fee), "reason": f.reason, "decision_bar_ms": f.decision_bar_ms,
            "fill_bar_ms": f.fill_bar_ms}


@dataclass(slots=True)
class _Day:
    day_ms: int                      # 00:00 UTC of the day
    start_equity: Decimal
    end_equity: Decimal
    bars: int = 0
    fills: int = 0
    fees: Decimal = Decimal(0)
    whole: bool = True               # False: this session started during the day


class BarWatcher:
    """Turns decided bars into notifications and hands each to ``post`` (which must not block)."""

    def __init__(self, run_id: str, post: Callable[[Notification], None], events: Iterable[str],
                 state: str = "ACTIVE", alarms: Iterable[Forecast] = ()) -> None:
        self.run_id = run_id
        self.post = post
        self.events = frozenset(events)
        self.state = state
        # The alarms active when the session starts (the logged forecasts): not announced again.
        self.alarms: dict[tuple[str, str], str] = {(f.symbol, f.model): f.alarm for f in alarms if f.alarm}
        self._day: _Day | None = None

    def _say(self, kind: str, bar_ms: int | None, text: str, **data: Any) -> None:
        if kind in self.events:
            self.post(Notification(kind, self.run_id, bar_ms, f"[{self.run_id}] {text}", data))

    def on_bar(self, record: BarRecord) -> None:
        """The engine's hook: one decided bar as the trade log gets it."""
        rs = record.risk_state
        self.bar(record.bar_ms, record.fills, record.equity.equity, rs.state if rs is not None else None,
                 rs.reason if rs is not None else "", record.forecasts)

    def bar(self, bar_ms: int, fills: Iterable[OrderFilled], equity: Decimal, state: str | None,
            state_reason: str, forecasts: Iterable[Forecast]) -> None:
        """One decided bar: ``fills`` at its open, ``equity`` at its close, the trading state after it."""
        self._daily(bar_ms, equity)
        fills = tuple(fills)
        day = self._day
        assert day is not None
        day.bars += 1
        day.fills += len(fills)
        day.fees += sum((f.fee for f in fills), Decimal(0))
        day.end_equity = equity
        if fills:
            lines = "; ".join(fill_line(f) for f in fills)
            self._say("fills", bar_ms, f"{len(fills)} fill(s) at {utc_minute(bar_ms)}: {lines}; "
                      f"equity {money(equity)}", fills=[fill_data(f) for f in fills], equity=str(equity))
        if state is not None and state != self.state:
            self._say("state", bar_ms, f"trading state {self.state} -> {state} at {utc_minute(bar_ms)}: "
                      f"{state_reason}", previous=self.state, state=state, reason=state_reason)
            self.state = state
        for f in forecasts:
            key = (f.symbol, f.model)
            before = self.alarms.get(key, "")
            if f.alarm and not before:
                self._say("alarm", bar_ms, f"skill alarm on {f.model} {f.symbol} at {utc_minute(bar_ms)}: "
                          f"{f.alarm}; its new exposure stops until skill is shown again", symbol=f.symbol,
                          model=f.model, alarm=f.alarm, active=True)
            elif before and not f.alarm:
                self._say("alarm", bar_ms, f"skill alarm cleared on {f.model} {f.symbol} at "
                          f"{utc_minute(bar_ms)}: skill shown again", symbol=f.symbol, model=f.model,
                          alarm="", active=False)
            if f.alarm:
                self.alarms[key] = f.alarm
            else:
                self.alarms.pop(key, None)

    def _daily(self, bar_ms: int, equity: Decimal) -> None:
        """At the first bar of a new UTC day, the summary of the day before; then start counting this one."""
        day_ms = bar_ms - bar_ms % DAY_MS
        day = self._day
        if day is not None and day.day_ms == day_ms:
            return
        if day is not None:
            ret = day.end_equity / day.start_equity - 1 if day.start_equity else Decimal(0)
            since = "" if day.whole else " (since this session started)"
            self._say("daily", bar_ms, f"daily summary {utc_day(day.day_ms)}{since}: equity {money(day.end_equity)}, "
                      f"return {ret * 100:+.2f} %, {day.fills} fill(s), fees {money(day.fees, 4)}",
                      day=utc_day(day.day_ms), equity=str(day.end_equity), start_equity=str(day.start_equity),
                      day_return=float(ret), fills=day.fills, fees=str(day.fees), bars=day.bars,
                      whole_day=day.whole)
            self._day = _Day(day_ms, day.end_equity, day.end_equity)
        else:
            # The first bar this session decides: the day's start is its own mark, the day counts from here.
            self._day = _Day(day_ms, equity, equity, whole=bar_ms == day_ms)

    def outage_began(self, last_bar_ms: int | None, why: str) -> None:
        self._say("outage", last_bar_ms, f"FEED OUTAGE: {why}", active=True, reason=why)

    def outage_ended(self, last_bar_ms: int | None, started_ms: int, ended_ms: int) -> None:
        minutes = (ended_ms - started_ms) / 60_000
        self._say("outage", last_bar_ms, f"feed back after {minutes:.1f} min: bar {utc_minute(last_bar_ms)} "
                  "decided", active=False, started_ms=started_ms, ended_ms=ended_ms)

    def bars_skipped(self, last_bar_ms: int | None, why: str) -> None:
        """Missed bars that were not decided late (more than recovery.max_missed_bars)."""
        self._say("outage", last_bar_ms, f"bars skipped: {why}", active=False, reason=why)


__all__ = ["Notification", "BarWatcher", "money"]
