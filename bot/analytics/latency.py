"""The feed's latency, read back from the trade log's ``bar_timings`` rows (a live session's bars).

For one bar closing at ``close`` whose candles arrived from ``first`` to ``last`` and whose decisions were
committed at ``committed`` (wall clock, ms):

    feed       = last − close          the exchange's close to the last candle the bar waited for
    processing = committed − last      assembling, forecasting, deciding, filling and the commit
    total      = committed − close     what a trader feels: a bar's close to its orders being on record

    wait       = last − first          how long the bar waited for its slowest symbol after the first

Bars decided late from REST (missed on the stream, caught up after a reconnect or a restart) are counted
apart: their "feed latency" is the outage, not the feed's speed.  ``feed`` and ``total`` compare the
exchange's clock with this machine's, so they are taken only over bars that arrived within one bar period
of their close on this machine's clock: a replay exchange runs a simulated clock (``bot demo`` replays
bars stamped years ago at many bars a second), and a system clock far off would make them meaningless too.
Those bars still count for ``processing`` and ``wait``, which use this machine's clock alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.store.rows import BarTiming


@dataclass(frozen=True, slots=True)
class Spread:
    """Percentiles of one latency, ms."""

    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class LatencySummary:
    bars: int                   # streamed bars (not late)
    late: int                   # bars decided late from REST
    off_clock: int              # streamed bars whose close is not on this machine's clock (no feed or total)
    feed: Spread | None         # None: no bar to take it over
    processing: Spread | None
    total: Spread | None
    wait: Spread | None
    last_total_ms: int | None   # the newest on-clock streamed bar's close to commit


def _spread(values: np.ndarray) -> Spread | None:
    if values.size == 0:
        return None
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return Spread(float(p50), float(p95), float(p99), float(values.max()))


def on_clock(t: BarTiming) -> bool:
    """The bar arrived within one bar period of its close on this machine's clock (see the module's note)."""
    return abs(t.last_received_ms - t.close_ms) <= t.close_ms - t.bar_ms


def summarize(timings: Sequence[BarTiming]) -> LatencySummary:
    """Percentiles over the streamed bars; bars decided late only counted."""
    live = [t for t in timings if not t.late]
    clocked = [t for t in live if on_clock(t)]
    feed = np.array([t.last_received_ms - t.close_ms for t in clocked], dtype=float)
    total = np.array([t.committed_ms - t.close_ms for t in clocked], dtype=float)
    processing = np.array([t.committed_ms - t.last_received_ms for t in live], dtype=float)
    wait = np.array([t.last_received_ms - t.first_received_ms for t in live], dtype=float)
    newest = max(clocked, key=lambda t: t.bar_ms, default=None)
    return LatencySummary(len(live), len(timings) - len(live), len(live) - len(clocked), _spread(feed),
                          _spread(processing), _spread(total), _spread(wait),
                          None if newest is None else newest.committed_ms - newest.close_ms)
