"""The engine: one bar at a time for all symbols, feed → buffer → predictor → decision → executor → store.

For each assembled bar ``t`` (the closed candles of every symbol that reported):

1. the candles enter the rolling windows (a gap restarts a symbol's window);
2. at the open of ``t``: funding is paid (perpetuals, every 8 h), orders decided
   at the close of ``t − 1`` fill — the first price the bot could have traded
   at; orders the executor calls expired (paper: their next bar never came; an
   exchange: a limit order past its time to live) are cancelled, never filled
   late; then the margin check liquidates any position whose isolated margin the
   bar's adverse extreme (low for longs, high for shorts) exhausted;
3. the account is marked at the closes of ``t``;
4. the predictor runs on every whole window at once, in a worker thread, so the
   feed keeps reading meanwhile;
5. the risk manager (gate, sizing, trading state, VaR budget) turns forecasts
   and the portfolio into a decision per symbol, and the orders go to the executor
   (an order it refuses is logged as cancelled with the reason);
6. everything about ``t`` is written to the store in one transaction.

Before a bar is decided, the engine makes sure no bar is missing: bars the stream
never delivered (a dropped connection, a restart) are fetched through REST and
decided late, in order; a bar lacking some symbols is completed from REST.  A
streamed candle that is implausible against its symbol's own history
(:mod:`bot.bars.plausibility`) or that the stream sent in two different versions is
held and settled through REST before anything is decided: REST's candle is used,
and with no REST candle the symbol is not traded that bar; each is counted as a
rejection with its reason and outcome, as are duplicate, late and out-of-order
klines (committed with the bar: :mod:`bot.store.rejections`).  A
watchdog records an outage when no bar closes for too long, and a trade log that
refuses writes blocks new exposure while the unwritten bars are held and retried.

The engine holds no I/O of its own beyond awaiting its collaborators: candles
come from any source that yields :class:`~bot.feeds.websocket.Received`, and the
store and executor are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.bars.assembly import AssembledBar, BarAssembler, same_prices
from bot.bars.buffer import Appended, MarketBuffer
from bot.bars.plausibility import implausibility
from bot.bars.watchdog import Watchdog
from bot.config import Settings
from bot.errors import DataError, ExecutionError
from bot.events import Candle, OrderFilled, Side, SubmitOrder, VarMeasured
from bot.execution import Executor
from bot.feeds.binance import reason_kind
from bot.feeds.websocket import Received
from bot.store.rejections import RejectionTally
from bot.store.rows import BarRecord, BarTiming
from bot.store.trade_store import TradeStore
from bot.timefmt import utc_minute, utc_span
from risk.events import Decision
from risk.manager import RiskManager, logged_state
from strategies.base import Predictor
from strategies.events import Forecast

log = logging.getLogger("bot.runs.engine")

# Fault injection for the crash-recovery tests: SIGMA_BOT_KILL_BEFORE_COMMIT=N makes the process
# SIGKILL itself when the N-th bar with fills of this session has filled in memory but is not yet
# committed — the worst moment for exactly-once accounting.  Unset in normal operation.
_KILL_BEFORE_COMMIT = int(os.environ.get("SIGMA_BOT_KILL_BEFORE_COMMIT", "0") or 0)
_fill_bars_seen = 0


def _kill_before_commit_countdown() -> None:
    global _fill_bars_seen
    _fill_bars_seen += 1
    if _fill_bars_seen == _KILL_BEFORE_COMMIT:
        log.critical("fault injection: SIGKILL between fills and their commit")
        os.kill(os.getpid(), signal.SIGKILL)


# SIGMA_BOT_KILL_AT_SWAP=1: SIGKILL when the first bar a new model version decides is decided but not committed
# (the crash test of the model swap, tests/e2e/test_retrain_crash.py).  Unset in normal operation.
_KILL_AT_SWAP = os.environ.get("SIGMA_BOT_KILL_AT_SWAP", "") == "1"


# Reasons the operator's commands give start with this word (a resume lifts only what it set).
OPERATOR = "operator"


def bar_timing(bar: AssembledBar, tf_ms: int, late: bool, began: float, committed: float,
               wall_now: float) -> BarTiming:
    """A bar's arrival and commit in wall-clock ms.  Arrivals are ``time.perf_counter()`` readings (steady
    within a session), turned into wall time against one reading of both clocks; a bar with no streamed
    candle (decided late from REST) counts as arriving when its processing began."""
    def wall_ms(perf: float) -> int:
        return round(wall_now * 1000 - (committed - perf) * 1000)
    arrived = bar.received_at or (began,)
    return BarTiming(bar.bar_ms, bar.bar_ms + tf_ms, wall_ms(min(arrived)), wall_ms(max(arrived)),
                     wall_ms(committed), len(bar.candles), late)


def _operator_reason(command_id: int, command: str, note: str) -> str:
    return f"{OPERATOR} {command} (command #{command_id}{': ' + note if note else ''})"


class BarSource(Protocol):
    """Closed bars over REST, for holes in the stream (the daemon's is ccxt's fetch_ohlcv)."""

    async def closed_bars(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> list[Candle]:
        """Every closed candle of ``symbols`` with open time in [start_ms, end_ms]."""
        ...


class BarObserver(Protocol):
    """Told of each decided bar and each outage after the fact (the notifications); must never block."""

    def on_bar(self, record: BarRecord) -> None: ...

    def outage_began(self, last_bar_ms: int | None, why: str) -> None: ...

    def outage_ended(self, last_bar_ms: int | None, started_ms: int, ended_ms: int) -> None: ...

    def bars_skipped(self, last_bar_ms: int | None, why: str) -> None: ...


class ModelVersions(Protocol):
    """The model versions behind the predictor (bot/retrain/keeper.py; the walk-forward's refits): told before
    each bar (a due swap happens there, between bars) and after its decision (the version that made the
    forecasts, and the models-table statements committed with the bar)."""

    async def bar_begins(self, bar_ms: int) -> None: ...

    def bar_decided(self, bar_ms: int, forecasts: Sequence[Forecast]
                    ) -> tuple[int | None, tuple[tuple[str, tuple[object, ...]], ...]]: ...

    def bar_committed(self, bar_ms: int) -> None: ...


@dataclass(slots=True)
class EngineStats:
    bars: int = 0
    incomplete_bars: int = 0
    fills: int = 0
    dropped: int = 0
    gaps: int = 0
    liquidations: int = 0
    late_bars: int = 0          # decided after the fact from REST (missed while disconnected or down)
    completed_from_rest: int = 0  # candles a bar lacked on the stream and got from REST
    held: int = 0               # streamed candles held as implausible or conflicting and settled through REST
    outages: int = 0
    unwritten: int = 0          # bars waiting for the trade log to accept them
    # Wall seconds spent in run(), from its start to its return.
    run_seconds: float = 0.0
    # Seconds from a closed kline's arrival to its bar's commit, one per candle.
    latencies: list[float] = field(default_factory=list)


class Engine:
    def __init__(self, settings: Settings, run_id: str, store: TradeStore, executor: Executor,
                 predictor: Predictor, risk: RiskManager, last_bar_ms: int | None = None,
                 history: BarSource | None = None, rejections: RejectionTally | None = None) -> None:
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
        self.last_bar_ms = last_bar_ms
        self.history = history
        # Rejected klines counted here and written with each bar (None: not counted, as in a backtest).
        self.rejections = rejections
        self.stats = EngineStats()
        self.watchdog = Watchdog.for_timeframe(self.tf_ms, settings.watchdog.stale_after_s, time.monotonic())
        self._outage_started_ms: int | None = None
        self._unwritten: list[BarRecord] = []
        self._write_failing = False
        # Knobs for an in-process source (a backtest); the daemon keeps the defaults.  Neither changes what
        # is decided: ``offload_predict=False`` calls the predictor on the loop (no feed to keep reading),
        # ``commit_every=K`` writes K bars per transaction (a crash loses at most the last K-1 decided bars,
        # all of them after the last committed one, so a rerun resumes from the log as after any restart).
        self.offload_predict = True
        self.commit_every = 1
        # The daemon takes operator commands from the trade log at each bar (a backtest has no operator).
        self.accept_commands = False
        # Told of each bar and outage (bot/notify); its failures are logged, never stop a bar.
        self.observer: BarObserver | None = None
        # The daemon logs when each bar arrived and was committed (bar_timings, the feed's latency); a
        # backtest's bars arrive from memory, so it logs none.
        self.record_timings = False
        # The model versions (None: forecasts name no version).
        self.models: ModelVersions | None = None

    def warm_up(self, candles: Sequence[Candle]) -> None:
        """History for the windows (the backfill); these bars are not decided."""
        for c in sorted(candles, key=lambda c: c.open_ms):
            if c.symbol in self.buffer.windows:
                self.buffer.append(c)

    async def run(self, queue: asyncio.Queue[Received], stop: asyncio.Event, max_bars: int | None = None,
                  initial: Sequence[Received] = (), stop_after_bar_ms: int | None = None) -> None:
        """Consume closed candles (``initial`` first, then the queue) until ``stop`` is set,
        ``max_bars`` bars are decided or bar ``stop_after_bar_ms`` is.

        A bar being processed when ``stop`` is set is finished and committed first.
        """
        timeout_s = self.settings.feed.assembly_timeout_s
        started = time.perf_counter()
        self._max_bars, self._stop_after = max_bars, stop_after_bar_ms
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            for item in initial:
                await self._process_ready(self._add(item))
            while not stop.is_set() and not self._done():
                deadlines = [d for d in (self._perf_to_mono(self.assembler.next_deadline(timeout_s)),
                                         self.watchdog.deadline()) if d is not None]
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({get, stop_wait}, timeout=wait_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    ready = self._add(get.result())
                else:
                    get.cancel()
                    ready = self.assembler.expire(time.perf_counter(), timeout_s)
                    if self.watchdog.check(time.monotonic()):
                        await self._outage_began()
                await self._process_ready(ready)
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
            self._count(reason_kind(dropped), dropped)
        return ready

    def _count(self, reason: str, example: str) -> None:
        """Count a rejected streamed kline (source ``websocket``)."""
        if self.rejections is not None:
            self.rejections.count("websocket", reason, example)

    def _done(self) -> bool:
        if self._max_bars is not None and self.stats.bars >= self._max_bars:
            return True
        return self._stop_after is not None and self.last_bar_ms is not None and self.last_bar_ms >= self._stop_after

    @staticmethod
    def _perf_to_mono(t: float | None) -> float | None:
        return None if t is None else t - time.perf_counter() + time.monotonic()

    async def _process_ready(self, ready: list[AssembledBar]) -> None:
        for bar in ready:
            if self._done():
                return
            await self._catch_up(bar.bar_ms)
            if self._done():
                return
            await self.process_bar(await self._complete(bar))

    # -- recovery: holes in the stream are filled through REST before anything is decided ----------

    async def _catch_up(self, t: int) -> None:
        """Decide, late and in order, the bars between the last decided one and ``t`` that the stream
        never delivered (a dropped connection, a restart); or, past ``max_missed_bars``, refill the
        windows and record the skip."""
        last = self.last_bar_ms
        if last is None or t <= last + self.tf_ms:
            return
        missed = (t - last) // self.tf_ms - 1
        rec = self.settings.recovery
        if self.history is None:
            log.warning("%d bar(s) %s missed and no REST source to fetch them: windows restart", missed,
                        utc_span(last + self.tf_ms, t - self.tf_ms))
            return
        if not rec.decide_missed_bars or missed > rec.max_missed_bars:
            start = max(last + self.tf_ms, t - self.buffer.length * self.tf_ms)
            self.warm_up(await self.history.closed_bars(self.symbols, start, t - self.tf_ms))
            span = utc_span(last + self.tf_ms, t - self.tf_ms)
            why = (f"{missed} bar(s) {span} not decided: more than max_missed_bars={rec.max_missed_bars}"
                   if rec.decide_missed_bars else f"{missed} bar(s) {span} not decided: decide_missed_bars=false")
            log.warning("%s; windows refilled through REST", why)
            now_ms = int(time.time() * 1000)
            await self.store.record_outage(self.run_id, now_ms, now_ms, last, why, False)
            self._tell("bars_skipped", last, why)
            return
        candles = await self.history.closed_bars(self.symbols, last + self.tf_ms, t - self.tf_ms)
        by_bar: dict[int, dict[str, Candle]] = defaultdict(dict)
        for c in candles:
            by_bar[c.open_ms][c.symbol] = c
        log.warning("deciding %d missed bar(s) %s late, from REST", missed, utc_span(last + self.tf_ms, t - self.tf_ms))
        for m in range(last + self.tf_ms, t, self.tf_ms):
            if self._done():
                return
            present = tuple(by_bar[m][s] for s in self.symbols if s in by_bar.get(m, {}))
            if present:  # no symbol at all: the exchange itself has no such bar
                await self.process_bar(AssembledBar(m, present, (), len(present) == len(self.symbols)), late=True)

    async def _complete(self, bar: AssembledBar) -> AssembledBar:
        """Fetch through REST, in one request per symbol, the closed candles of ``bar`` that the stream did
        not deliver and those it delivered but that cannot be trusted (implausible or conflicting)."""
        held = self._suspects(bar)
        have = {c.symbol for c in bar.candles}
        missing = [s for s in self.symbols if s not in have]
        if not missing and not held:
            return bar
        fetched: dict[str, Candle] = {}
        if self.history is not None:
            fetched = {c.symbol: c for c in await self.history.closed_bars([*missing, *held], bar.bar_ms, bar.bar_ms)
                       if c.open_ms == bar.bar_ms}
        got = {c.symbol: (c, r) for c, r in zip(bar.candles, bar.received_at)}
        for symbol, (kind, detail) in held.items():
            official = fetched.pop(symbol, None)
            streamed = got[symbol][0]
            if official is None:
                del got[symbol]   # neither trusted nor confirmed: as if it never came
                outcome = "refused, no REST candle (not traded this bar)"
            elif kind == "implausible kline" and same_prices(official, streamed):
                outcome = "confirmed by REST"
            else:
                got[symbol] = (official, got[symbol][1])
                outcome = "REST's candle used"
            self.stats.held += 1
            log.warning("bar %s of %s: %s (%s): %s", utc_minute(bar.bar_ms), symbol, kind, detail, outcome)
            self._count(f"{kind}: {outcome}", f"bar {bar.bar_ms} of {symbol}: {detail}; {outcome}")
        if fetched:
            self.stats.completed_from_rest += len(fetched)
            log.info("bar %s: %s completed from REST", utc_minute(bar.bar_ms), ", ".join(sorted(fetched)))
            got.update({s: (c, time.perf_counter()) for s, c in fetched.items()})
        ordered = [got[s] for s in self.symbols if s in got]
        return AssembledBar(bar.bar_ms, tuple(c for c, _ in ordered), tuple(r for _, r in ordered),
                            len(ordered) == len(self.symbols))

    def _suspects(self, bar: AssembledBar) -> dict[str, tuple[str, str]]:
        """The streamed candles of ``bar`` not to decide on as they are: ``{symbol: (kind, detail)}``."""
        out: dict[str, tuple[str, str]] = {}
        for symbol, versions in bar.conflicts:
            closes = ", ".join(str(c.close) for c in versions)
            out[symbol] = ("conflicting klines", f"{len(versions)} different closed klines (closes {closes})")
        f = self.settings.feed
        for c in bar.candles:
            w = self.buffer.windows.get(c.symbol)
            if c.symbol in out or w is None or w.last_candle is None:
                continue
            why = implausibility(c, w.last_candle.close, w.recent_closes(), f.max_jump_ratio, f.max_jump_sigma)
            if why is not None:
                out[c.symbol] = ("implausible kline", why)
        return out

    # -- the watchdog ------------------------------------------------------------------------------

    async def _outage_began(self) -> None:
        flatten = self.settings.watchdog.flatten
        why = (f"no closed bar for {self.watchdog.stale_after_s:.0f} s after bar {utc_minute(self.last_bar_ms)}"
               + ("; trading halted to flatten at the next bar" if flatten else ""))
        log.warning("FEED STALE: %s", why)
        self.stats.outages += 1
        self._outage_started_ms = int(time.time() * 1000)
        if flatten:
            self.risk.halt(f"feed outage: {why}")
        await self._safe_store(self.store.record_outage(self.run_id, self._outage_started_ms, None,
                                                        self.last_bar_ms, why, flatten))
        self._tell("outage_began", self.last_bar_ms, why)

    async def process_bar(self, bar: AssembledBar, late: bool = False) -> None:
        t = bar.bar_ms
        began = time.perf_counter()
        if self.models is not None:
            await self.models.bar_begins(t)     # a model swap due at this bar happens here, between bars
        candles = {c.symbol: c for c in bar.candles}
        if not bar.complete:
            self.stats.incomplete_bars += 1
            missing = [s for s in self.symbols if s not in candles]
            log.warning("bar %s decided without %s (no closed kline in time)", utc_minute(t), ", ".join(missing))
        for c in bar.candles:
            if self.buffer.append(c) is Appended.GAP:
                self.stats.gaps += 1
                log.warning("gap before bar %s of %s: its window restarts", utc_minute(t), c.symbol)

        # At the open: stale orders cancelled, funding paid, due orders filled; inside the bar: the margin check.
        cancelled: list[tuple[str, str]] = []
        for order in self.executor.open_orders():
            why = self.executor.expiry_reason(order, t, self.tf_ms)
            if why is not None:
                cancelled += self.executor.cancel_open(why, order.symbol)
        funding = self.executor.apply_funding(t, {s: c.open for s, c in candles.items()})
        fills: list[OrderFilled] = await self.executor.on_bar(bar.candles)
        liquidations = await self.executor.liquidate(bar.candles)  # the executor logs each one
        closes = {s: c.close for s, c in candles.items()}
        equity = self.executor.mark(t, closes)

        batch = self.buffer.batch(t)
        forecasts: list[Forecast] = []
        if batch.symbols and self.offload_predict:
            forecasts = await asyncio.to_thread(self.predictor.predict, t, batch.symbols, batch.windows)
        elif batch.symbols:
            forecasts = self.predictor.predict(t, batch.symbols, batch.windows)
        positions = {s: self.executor.position(s) for s in self.symbols}
        taken = await self._take_commands() if self.accept_commands else []
        risk = self.risk.decide(t, forecasts, batch.windows, positions, closes, equity.equity)

        decided = {d.symbol: d for d in risk.decisions}
        decisions = [decided.get(s) or Decision(s, t, "none", positions[s], positions[s],
                                                 self._why_no_forecast(s, candles)) for s in self.symbols]
        if late:
            decisions = [replace(d, reason="late (missed on the stream, decided from REST): " + d.reason)
                         for d in decisions]
        if taken:
            said = "; ".join(f"{OPERATOR} command #{cid} {command} taken" for cid, command, _ in taken)
            decisions = [replace(d, reason=f"{d.reason}; {said}") for d in decisions]
        orders: list[SubmitOrder] = []
        for intent in risk.intents:
            side = Side.BUY if intent.delta > 0 else Side.SELL
            order = SubmitOrder(f"{self.run_id}:{t}:{intent.symbol}", intent.symbol, t, side, abs(intent.delta),
                                intent.leverage)
            try:
                order = await self.executor.submit(order)
            except ExecutionError as exc:  # refused (an exchange's answer, a size below its minimum): logged
                log.warning("order %s refused: %s", order.order_id, exc)
                cancelled.append((order.order_id, f"refused: {exc}"[:500]))
            orders.append(order)

        version, model_rows = self.models.bar_decided(t, forecasts) if self.models is not None else (None, ())
        record = BarRecord(
            t, bar.candles, tuple(forecasts), tuple(decisions), tuple(orders), tuple(fills) + tuple(liquidations),
            tuple(cancelled), equity, tuple(funding), logged_state(risk.state, risk.entry_bars),
            tuple(VarMeasured(v.method, v.horizon, v.alpha, float(v.var), float(v.es)) for v in risk.var),
            risk.steps, self.rejections.changed() if self.rejections is not None else (),
            tuple(cid for cid, _, _ in taken), version, model_rows)
        await self._write(record)
        if self.models is not None and not self._unwritten:   # committed, with whatever it held for the models
            self.models.bar_committed(t)
        committed = time.perf_counter()
        self.stats.latencies.extend(committed - r for r in bar.received_at)
        if self.record_timings and not self._unwritten:   # committed (a bar held in memory has no commit time)
            await self._safe_store(self.store.record_timing(self.run_id, bar_timing(
                bar, self.tf_ms, late, began, committed, time.time())))
        self.stats.bars += 1
        self.stats.late_bars += late
        self.stats.fills += len(fills)
        self.stats.liquidations += len(liquidations)
        self.last_bar_ms = t
        self.assembler.last_emitted_ms = max(self.assembler.last_emitted_ms or t, t)
        self._tell("on_bar", record)
        if self.watchdog.bar_decided(time.monotonic()) and self._outage_started_ms is not None:
            ended_ms = int(time.time() * 1000)
            await self._safe_store(self.store.end_outage(self.run_id, self._outage_started_ms, ended_ms))
            self._tell("outage_ended", t, self._outage_started_ms, ended_ms)
            self._outage_started_ms = None

    def _tell(self, what: str, *args: object) -> None:
        """Tell the observer (notifications); a failure there is logged and the bar goes on."""
        if self.observer is None:
            return
        try:
            getattr(self.observer, what)(*args)
        except Exception:
            log.exception("notification of %s failed", what)

    # -- operator commands (bot/web/commands.py): read from the trade log, applied through the risk hooks ---

    async def _take_commands(self) -> list[tuple[int, str, str]]:
        """Apply the operator's commands not yet taken, in order; they are marked taken with this bar."""
        try:
            pending = await self.store.pending_commands(self.run_id)
        except (DataError, sqlite3.Error) as exc:
            log.error("could not read operator commands: %s", exc)
            return []
        for cid, command, note in pending:
            said = _operator_reason(cid, command, note)
            log.warning("taking %s", said)
            if command == "stop-entries":
                self.risk.block_new_exposure(said, source=OPERATOR)
            elif command == "flatten":
                self.risk.halt(said)
                self.risk.block_new_exposure(said, source=OPERATOR)
            elif command == "resume":
                self.risk.block_new_exposure(None, source=OPERATOR)
                self.risk.lift_halt(said, OPERATOR)
        return pending

    async def restore_operator_block(self) -> None:
        """After a restart: keep new exposure blocked if the last command taken was stop-entries or flatten."""
        last = await self.store.last_operator_block(self.run_id)
        if last is not None:
            said = _operator_reason(*last)
            log.warning("resuming with new exposure blocked by %s", said)
            self.risk.block_new_exposure(said, source=OPERATOR)

    # -- the trade log: a bar that cannot be written is kept and retried, and no new exposure is taken ---

    async def _write(self, record: BarRecord) -> None:
        if record.fills and _KILL_BEFORE_COMMIT:
            _kill_before_commit_countdown()
        if _KILL_AT_SWAP and any("status = 'serving'" in sql for sql, _ in record.model_rows):
            log.critical("fault injection: SIGKILL at the first bar of a new model version, before its commit")
            os.kill(os.getpid(), signal.SIGKILL)
        self._unwritten.append(record)
        if len(self._unwritten) >= self.commit_every or self._write_failing:
            await self.flush()

    async def flush(self) -> None:
        """Write every decided bar not yet in the trade log, in one transaction."""
        if not self._unwritten:
            return
        try:
            await self.store.write_bars(self.run_id, self._unwritten)
        except (DataError, sqlite3.Error) as exc:
            self._write_failing = True
            self.stats.unwritten = len(self._unwritten)
            why = f"trade log not writable ({exc}); {len(self._unwritten)} bar(s) held in memory"
            log.error("%s: no new exposure until it is", why)
            self.risk.block_new_exposure(why)
            return
        if self._write_failing:
            log.warning("trade log writable again: %d held bar(s) written", len(self._unwritten))
        self._write_failing = False
        self._unwritten.clear()
        self.stats.unwritten = 0
        self.risk.block_new_exposure(None)

    async def _safe_store(self, write: Awaitable[None]) -> None:
        """A bookkeeping write (outages) that must not stop trading if the log is failing."""
        try:
            await write
        except (DataError, sqlite3.Error) as exc:
            log.error("could not record in the trade log: %s", exc)

    def _why_no_forecast(self, symbol: str, candles: dict[str, Candle]) -> str:
        if symbol not in candles:
            return "no closed bar for this symbol at this time: not traded"
        w = self.buffer.windows[symbol]
        return f"window not whole: {w.bars_missing} more consecutive bar(s) needed: not traded"
