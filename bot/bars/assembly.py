"""Group closed candles of many symbols into bars: one bar time, all symbols together.

The engine decides a bar once for all symbols.  Closed klines of one hour
arrive within moments of each other but not at once, so the assembler holds a
bar open until every subscribed symbol has reported, a candle of a later bar
arrives, or the engine's timeout says the stragglers are late.  Pure: the
caller supplies the clock.

A second closed kline of a symbol for a pending bar is either a duplicate
(identical: dropped) or a *conflict* (different): the first one is not simply
kept, the bar names the symbol in :attr:`AssembledBar.conflicts` and the engine
settles it through REST.  A kline of a bar already decided is dropped as a
duplicate (the same bar again), late (its bar was decided without it) or
out of order (an older bar).  Every dropped
kline's reason reads ``"<kind>: <detail>"`` for counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.events import Candle


@dataclass(slots=True)
class PendingBar:
    bar_ms: int
    first_seen: float
    candles: dict[str, Candle] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)
    conflicts: dict[str, list[Candle]] = field(default_factory=dict)   # symbol -> every version received


@dataclass(frozen=True, slots=True)
class AssembledBar:
    bar_ms: int
    candles: tuple[Candle, ...]          # in subscription order
    received_at: tuple[float, ...]       # per candle, when its frame arrived
    complete: bool                       # every subscribed symbol is present
    # Symbols whose stream sent differing closed klines for this bar, with every version (first first).
    conflicts: tuple[tuple[str, tuple[Candle, ...]], ...] = ()


class BarAssembler:
    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        self._pending: dict[int, PendingBar] = {}
        self.last_emitted_ms: int | None = None
        self._emitted: dict[str, Candle] = {}   # each symbol's candle in the latest bar emitted with it

    def add(self, candle: Candle, received_at: float) -> tuple[list[AssembledBar], str | None]:
        """Add one candle; returns the bars now ready (oldest first) and, if the candle
        was dropped, why."""
        if self.last_emitted_ms is not None and candle.open_ms <= self.last_emitted_ms:
            return [], self._late(candle)
        bar = self._pending.get(candle.open_ms)
        if bar is None:
            bar = self._pending[candle.open_ms] = PendingBar(candle.open_ms, received_at)
        held = bar.candles.get(candle.symbol)
        if held is not None:
            versions = bar.conflicts.get(candle.symbol, [held])
            if any(same_prices(candle, v) for v in versions):
                return [], f"duplicate kline: repeated closed bar {candle.open_ms} of {candle.symbol}"
            bar.conflicts[candle.symbol] = [*versions, candle]
            return [], None   # held with the bar: the engine settles it through REST
        bar.candles[candle.symbol] = candle
        bar.received_at[candle.symbol] = received_at
        ready: list[AssembledBar] = []
        # A candle of a later bar means every earlier bar has had its chance.
        for ms in sorted(self._pending):
            if ms < candle.open_ms:
                ready.append(self._emit(ms))
        if len(bar.candles) == len(self.symbols):
            ready.append(self._emit(candle.open_ms))
        return ready, None

    def _late(self, candle: Candle) -> str:
        """Why a kline of a bar at or before the last decided one is dropped."""
        where = f"bar {candle.open_ms} of {candle.symbol}"
        if candle.open_ms < (self.last_emitted_ms or 0):
            return f"out-of-order kline: {where} is not after the last decided bar {self.last_emitted_ms}"
        decided = self._emitted.get(candle.symbol)
        if decided is None or decided.open_ms != candle.open_ms:
            return f"late kline: {where} arrived after its bar was decided without it (not after the last " \
                   "decided bar)"
        if not same_prices(decided, candle):
            return (f"conflicting klines: {where} differs from the one decided (close {decided.close}, now "
                    f"{candle.close}); too late to change it")
        return f"duplicate kline: repeated closed {where}, which is not after the last decided bar"

    def expire(self, now: float, timeout_s: float) -> list[AssembledBar]:
        """Emit bars that have waited ``timeout_s`` since their first candle."""
        return [self._emit(ms) for ms in sorted(self._pending) if now - self._pending[ms].first_seen >= timeout_s]

    def next_deadline(self, timeout_s: float) -> float | None:
        if not self._pending:
            return None
        return min(b.first_seen for b in self._pending.values()) + timeout_s

    def _emit(self, bar_ms: int) -> AssembledBar:
        bar = self._pending.pop(bar_ms)
        present = [s for s in self.symbols if s in bar.candles]
        self.last_emitted_ms = bar_ms if self.last_emitted_ms is None else max(self.last_emitted_ms, bar_ms)
        self._emitted.update(bar.candles)
        conflicts = tuple((s, tuple(bar.conflicts[s])) for s in present if s in bar.conflicts)
        return AssembledBar(bar_ms, tuple(bar.candles[s] for s in present),
                            tuple(bar.received_at[s] for s in present), len(present) == len(self.symbols), conflicts)

    @property
    def pending(self) -> int:
        return len(self._pending)


def same_prices(a: Candle, b: Candle) -> bool:
    """The same bar with the same open, high, low, close and volume (decimal values, not their strings)."""
    return (a.symbol, a.open_ms, a.open, a.high, a.low, a.close, a.volume) == \
        (b.symbol, b.open_ms, b.open, b.high, b.low, b.close, b.volume)
