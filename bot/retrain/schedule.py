"""When a retrain is due: every ``interval_bars`` bars after the last one started, or when the skill monitor
fires (pure; the keeper asks after each decided bar)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strategies.events import Forecast


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str      # 'schedule' or 'alarm'
    detail: str


def fresh_alarms(bar_ms: int, forecasts: Sequence[Forecast]) -> list[str]:
    """The symbols whose skill monitor fired at ``bar_ms`` (an alarm reads ``since bar <bar_ms>: ...``)."""
    return sorted({f.symbol for f in forecasts if f.alarm.startswith(f"since bar {bar_ms}:")})


def retrain_due(bar_ms: int, tf_ms: int, since_ms: int | None, interval_bars: int, on_alarm: bool,
                alarms: Sequence[str], busy: bool) -> Trigger | None:
    """The trigger of a retrain after bar ``bar_ms``, or None.

    ``since_ms``: the bar the last retrain started after (or the run's first bar); ``busy``: a retrain is
    still running or waiting to be swapped in (one at a time).
    """
    if busy:
        return None
    if on_alarm and alarms:
        return Trigger("alarm", f"skill monitor fired at bar {bar_ms} for {', '.join(alarms)}")
    if interval_bars > 0 and since_ms is not None and (bar_ms - since_ms) // tf_ms >= interval_bars:
        return Trigger("schedule", f"{(bar_ms - since_ms) // tf_ms} bars since bar {since_ms}")
    return None
