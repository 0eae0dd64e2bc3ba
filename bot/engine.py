"""The engine: one bar at a time for all symbols, feed → buffer → predictor → decision → executor → store.

For each assembled bar ``t`` (the closed candles of every symbol that reported):

1. the candles enter the rolling windows (a gap restarts a symbol's window);
2. at the open of ``t``: funding is paid (perpetuals, every 8 h), orders decided
   at the close of ``t − 1`` fill — the first price the bot could have traded
   at; older open orders (their next bar never came) are cancelled, never filled
   late; then the margin check liquidates any position whose isolated margin the
   bar's adverse extreme (low for longs, high for shorts) exhausted;
3. the account is marked at the closes of ``t``;
4. the predictor runs on every whole window at once, in a worker thread, so the
   feed keeps reading meanwhile;
5. the risk manager (gate, sizing, trading state, VaR budget) turns forecasts
   and the portfolio into a decision per symbol, and the orders go to the executor;
6. everything about ``t`` is written to the store in one transaction.

The engine holds no I/O of its own beyond awaiting its collaborators: candles
come from any source that yields :class:`~bot.feeds.websocket.Received`, and the
store and executor are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.assembly import AssembledBar, BarAssembler
from bot.buffer import Appended, MarketBuffer
from bot.config import Settings
from bot.events import Candle, Decision, Forecast, OrderFilled, Side, SubmitOrder, VarMeasured
from bot.execution import Executor
from bot.feeds.websocket import Received
from bot.store import BarRecord, TradeStore
from risk.manager import RiskManager, logged_state
from strategies.base import Predictor

log = logging.getLogger("bot.engine")


@dataclass(slots=True)
class EngineStats:
    bars: int = 0
    incomplete_bars: int = 0
    fills: int = 0
    dropped: int = 0
    gaps: int = 0
    liquidations: int = 0
    # Wall seconds spent in run(), from its start to its return.
    run_seconds: float = 0.0
    # Seconds from a closed kline's arrival to its bar's commit, one per candle.
    latencies: list[float] = field(default_factory=list)


class Engine:
    def __init__(self, settings: Settings, run_id: str, store: TradeStore, executor: Executor,
                 predictor: Predictor, risk: RiskManager, last_bar_ms: int | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.store = store
        self.executor = executor
        self.predictor = predictor
        self.risk = risk
        self.symbols: Sequence[str] = settings.market.symbols
        self.tf_ms = settings.market.timeframe_ms
        self.buffer = MarketBuffer(self.symbols, settings.market.window, self.tf_ms)
        self.assembler = BarAssembler(self.symbols)
        self.assembler.last_emitted_ms = last_bar_ms
        self.stats = EngineStats()

    def warm_up(self, candles: Sequence[Candle]) -> None:
        """History for the windows (the backfill); these bars are not decided."""
        for c in sorted(candles, key=lambda c: c.open_ms):
            if c.symbol in self.buffer.windows:
                self.buffer.append(c)

    async def run(self, queue: asyncio.Queue[Received], stop: asyncio.Event, max_bars: int | None = None,
                  initial: Sequence[Received] = ()) -> None:
        """Consume closed candles (``initial`` first, then the queue) until ``stop`` is set or
        ``max_bars`` bars are decided.

        A bar being processed when ``stop`` is set is finished and committed first.
        """
        timeout_s = self.settings.feed.assembly_timeout_s
        started = time.perf_counter()
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            for item in initial:
                await self._process_ready(self._add(item), max_bars)
            while not stop.is_set() and (max_bars is None or self.stats.bars < max_bars):
                deadline = self.assembler.next_deadline(timeout_s)
                wait_s = None if deadline is None else max(0.0, deadline - time.perf_counter())
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, timeout=wait_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    ready = self._add(get.result())
                else:
                    get.cancel()
                    ready = self.assembler.expire(time.perf_counter(), timeout_s)
                await self._process_ready(ready, max_bars)
        finally:
            stop_wait.cancel()
            self.stats.run_seconds += time.perf_counter() - started
            if self.assembler.pending:
                log.info("stopping with %d bar(s) still assembling; they are not decided", self.assembler.pending)

    def _add(self, item: Received) -> list[AssembledBar]:
        ready, dropped = self.assembler.add(item.candle, item.received_at)
        if dropped:
            self.stats.dropped += 1
            log.info("candle dropped: %s", dropped)
        return ready

    async def _process_ready(self, ready: list[AssembledBar], max_bars: int | None) -> None:
        for bar in ready:
            if max_bars is not None and self.stats.bars >= max_bars:
                return
            await self.process_bar(bar)

    async def process_bar(self, bar: AssembledBar) -> None:
        t = bar.bar_ms
        candles = {c.symbol: c for c in bar.candles}
        if not bar.complete:
            self.stats.incomplete_bars += 1
            missing = [s for s in self.symbols if s not in candles]
            log.warning("bar %d decided without %s (no closed kline in time)", t, ", ".join(missing))
        for c in bar.candles:
            if self.buffer.append(c) is Appended.GAP:
                self.stats.gaps += 1
                log.warning("gap before bar %d of %s: its window restarts", t, c.symbol)

        # At the open: stale orders cancelled, funding paid, due orders filled; inside the bar: the margin check.
        cancelled: list[tuple[str, str]] = []
        for order in self.executor.open_orders():
            if order.bar_ms < t - self.tf_ms:  # its next bar never came: never fill it late
                cancelled += self.executor.cancel_open(
                    f"stale: no bar of {order.symbol} followed decision bar {order.bar_ms}", order.symbol)
        funding = self.executor.apply_funding(t, {s: c.open for s, c in candles.items()})
        fills: list[OrderFilled] = await self.executor.on_bar(bar.candles)
        liquidations = await self.executor.liquidate(bar.candles)  # the executor logs each one
        closes = {s: c.close for s, c in candles.items()}
        equity = self.executor.mark(t, closes)

        batch = self.buffer.batch(t)
        forecasts: list[Forecast] = []
        if batch.symbols:
            forecasts = await asyncio.to_thread(self.predictor.predict, t, batch.symbols, batch.windows)
        positions = {s: self.executor.position(s) for s in self.symbols}
        risk = self.risk.decide(t, forecasts, batch.windows, positions, closes, equity.equity)

        decided = {d.symbol: d for d in risk.decisions}
        decisions = [decided.get(s) or Decision(s, t, "none", positions[s], positions[s],
                                                 self._why_no_forecast(s, candles)) for s in self.symbols]
        orders: list[SubmitOrder] = []
        for intent in risk.intents:
            side = Side.BUY if intent.delta > 0 else Side.SELL
            order = SubmitOrder(f"{self.run_id}:{t}:{intent.symbol}", intent.symbol, t, side, abs(intent.delta),
                                intent.leverage)
            await self.executor.submit(order)
            orders.append(order)

        record = BarRecord(
            t, bar.candles, tuple(forecasts), tuple(decisions), tuple(orders), tuple(fills) + tuple(liquidations),
            tuple(cancelled), equity, tuple(funding), logged_state(risk.state, risk.entry_bars),
            tuple(VarMeasured(v.method, v.horizon, v.alpha, float(v.var), float(v.es)) for v in risk.var),
            risk.steps)
        await self.store.write_bar(self.run_id, record)
        committed = time.perf_counter()
        self.stats.latencies.extend(committed - r for r in bar.received_at)
        self.stats.bars += 1
        self.stats.fills += len(fills)
        self.stats.liquidations += len(liquidations)

    def _why_no_forecast(self, symbol: str, candles: dict[str, Candle]) -> str:
        if symbol not in candles:
            return "no closed bar for this symbol at this time: not traded"
        w = self.buffer.windows[symbol]
        return f"window not whole: {w.bars_missing} more consecutive bar(s) needed: not traded"
