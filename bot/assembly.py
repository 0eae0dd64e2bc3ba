"""Group closed candles of many symbols into bars: one bar time, all symbols together.

The engine decides a bar once for all symbols.  Closed klines of one hour
arrive within moments of each other but not at once, so the assembler holds a
bar open until every subscribed symbol has reported, a candle of a later bar
arrives, or the engine's timeout says the stragglers are late.  Pure: the
caller supplies the clock.
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


@dataclass(frozen=True, slots=True)
class AssembledBar:
    bar_ms: int
    candles: tuple[Candle, ...]          # in subscription order
    received_at: tuple[float, ...]       # per candle, when its frame arrived
    complete: bool                       # every subscribed symbol is present


class BarAssembler:
    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        self._pending: dict[int, PendingBar] = {}
        self.last_emitted_ms: int | None = None

    def add(self, candle: Candle, received_at: float) -> tuple[list[AssembledBar], str | None]:
        """Add one candle; returns the bars now ready (oldest first) and, if the candle
        was dropped, why."""
        if self.last_emitted_ms is not None and candle.open_ms <= self.last_emitted_ms:
            return [], f"bar {candle.open_ms} of {candle.symbol} is not after the last decided bar"
        bar = self._pending.get(candle.open_ms)
        if bar is None:
            bar = self._pending[candle.open_ms] = PendingBar(candle.open_ms, received_at)
        if candle.symbol in bar.candles:
            return [], f"repeated closed bar {candle.open_ms} of {candle.symbol}"
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
        return AssembledBar(bar_ms, tuple(bar.candles[s] for s in present),
                            tuple(bar.received_at[s] for s in present), len(present) == len(self.symbols))

    @property
    def pending(self) -> int:
        return len(self._pending)
