"""Feed latency read back from bar_timings: which bars count for which span, and the percentiles."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bot.analytics.latency import on_clock, summarize
from bot.bars.assembly import AssembledBar
from bot.events import Candle
from bot.runs.engine import bar_timing
from bot.store.rows import BarTiming

H = 3_600_000
T0 = 1_767_225_600_000   # 2026-01-01


def timing(k: int, feed: int, processing: int, wait: int = 0, late: bool = False) -> BarTiming:
    bar = T0 + k * H
    close = bar + H
    last = close + feed
    return BarTiming(bar, close, last - wait, last, last + processing, 2, late)


def test_percentiles_over_streamed_bars_with_late_ones_only_counted() -> None:
    timings = [timing(k, feed=100 * (k + 1), processing=10 * (k + 1), wait=5) for k in range(100)]
    timings.append(timing(100, feed=2 * H, processing=7, late=True))   # caught up from REST after an outage
    s = summarize(timings)
    assert (s.bars, s.late, s.off_clock) == (100, 1, 0)
    assert s.feed is not None and s.processing is not None and s.total is not None and s.wait is not None
    assert s.feed.p50 == np.percentile([100 * (k + 1) for k in range(100)], 50) == 5050
    assert s.feed.max == 10_000 and s.processing.max == 1000 and s.total.max == 11_000
    assert s.wait.p99 == 5
    assert s.last_total_ms == 10_000 + 1000   # the newest streamed bar, not the late one


def test_a_simulated_clock_gives_processing_but_no_feed_latency() -> None:
    """A replay stamps bars years before they arrive: close → arrival says nothing about the feed."""
    years = 3 * 365 * 24 * H
    s = summarize([timing(k, feed=years, processing=40) for k in range(10)])
    assert (s.bars, s.off_clock) == (10, 10)
    assert s.feed is None and s.total is None and s.last_total_ms is None
    assert s.processing is not None and s.processing.p50 == 40


def test_no_timings() -> None:
    s = summarize([])
    assert (s.bars, s.late, s.off_clock, s.feed, s.processing, s.total, s.wait) == (0, 0, 0, None, None, None, None)


@given(st.lists(st.tuples(st.integers(-H, 2 * H), st.integers(0, 60_000), st.integers(0, 30_000), st.booleans()),
                max_size=40))
def test_counts_add_up_and_on_clock_means_within_a_bar(rows: list[tuple[int, int, int, bool]]) -> None:
    timings = [timing(k, feed, proc, wait, late) for k, (feed, proc, wait, late) in enumerate(rows)]
    s = summarize(timings)
    assert s.bars + s.late == len(timings)
    clocked = [t for t in timings if not t.late and on_clock(t)]
    assert s.bars - s.off_clock == len(clocked)
    assert all(abs(t.last_received_ms - t.close_ms) <= H for t in clocked)
    if clocked:
        assert s.feed is not None and s.total is not None and s.processing is not None
        # total = feed + processing bar by bar, so its max is at most the sum of the two maxima
        assert s.total.max <= s.feed.max + s.processing.max
        assert s.feed.max <= H


def test_bar_timing_turns_perf_counter_readings_into_wall_clock() -> None:
    c = [Candle(s, T0, T0 + H - 1, *(1,) * 5) for s in ("BTC/USDT", "ETH/USDT")]  # type: ignore[arg-type]
    bar = AssembledBar(T0, tuple(c), (100.0, 100.25), True)
    # committed at perf 100.75 when the wall clock read T0 + H + 2 s
    t = bar_timing(bar, H, False, began=100.5, committed=100.75, wall_now=(T0 + H + 2_000) / 1000)
    assert t == BarTiming(T0, T0 + H, T0 + H + 1_250, T0 + H + 1_500, T0 + H + 2_000, 2, False)
    late = bar_timing(AssembledBar(T0, tuple(c), (), True), H, True, began=100.5, committed=100.75,
                      wall_now=(T0 + H + 2_000) / 1000)
    assert late.first_received_ms == late.last_received_ms == T0 + H + 1_750 and late.late
