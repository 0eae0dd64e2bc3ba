"""The stale-feed watchdog: no closed bar for longer than expected is an outage.

Pure: the caller gives it the monotonic clock.  The engine asks it for the next
deadline while it waits for candles, reports each decided bar, and records an
outage in the trade log when :meth:`Watchdog.check` says one began.
"""

from __future__ import annotations

from dataclasses import dataclass

GRACE_S = 300.0  # the default allowance on top of one bar period


@dataclass(slots=True)
class Watchdog:
    stale_after_s: float
    last_bar_at: float
    in_outage: bool = False

    @classmethod
    def for_timeframe(cls, timeframe_ms: int, stale_after_s: float, now: float) -> Watchdog:
        """``stale_after_s`` 0 means one bar period plus five minutes."""
        return cls(stale_after_s or timeframe_ms / 1000 + GRACE_S, now)

    def deadline(self) -> float | None:
        """When the feed turns stale (None while an outage is already open)."""
        return None if self.in_outage else self.last_bar_at + self.stale_after_s

    def check(self, now: float) -> bool:
        """True exactly once per outage: when the feed has just turned stale."""
        if self.in_outage or now - self.last_bar_at < self.stale_after_s:
            return False
        self.in_outage = True
        return True

    def bar_decided(self, now: float) -> bool:
        """Note a decided bar; True if it ended an outage."""
        ended = self.in_outage
        self.last_bar_at = now
        self.in_outage = False
        return ended
