"""Backtests: recorded bars through the daemon's own engine, from memory, at full speed.

    CSV files (exact decimal strings) ──► HistoricalBars ──► Engine.process_bar ──► the same SQLite trade log

Only where candles come from and when rows are committed differ from ``bot run``:

* **Source.** :class:`HistoricalBars` turns each row into the :class:`~bot.events.Candle` the websocket
  parser would have made from the same kline (the file's strings as Decimals, ``close_ms = open + tf − 1``)
  and hands the engine one :class:`~bot.bars.assembly.AssembledBar` per bar time: every symbol that has a row
  then.  Before the first decided bar the ``market.window`` bars before it fill the windows, as the
  daemon's REST backfill does before the first streamed bar.  Everything after that — buffer, predictor,
  risk, paper executor, store — is the one :class:`~bot.runs.engine.Engine` object the daemon runs, through
  the same ``process_bar``; there is no second decision path.
* **Commits.** ``commit_every`` bars per transaction instead of one (``Engine.commit_every``; by default
  about ``COMMIT_BAR_EVENTS`` bar-events' worth, at most ``COMMIT_EVERY`` bars).  A crash or
  Ctrl-C loses at most the decided bars after the last commit; the trade log always holds a prefix of the
  run, whole bars only, so rerunning the same command with the same ``--run`` resumes after the last
  committed bar exactly as a restarted daemon does (account, open orders, risk state from the log).
  The commits are made by a child process (:class:`~bot.bar_writer.BarWriter`, the same ``TradeStore``
  transaction) while the engine decides the next bars, so SQLite's work runs beside the engine's.
* **Predictor calls** run on the loop (``Engine.offload_predict = False``): there is no feed to keep reading.
* **Batch inference over time** (:class:`PrecomputedBaseline`): the baseline's forecasts for every bar of a
  symbol come from one vectorised pass over all its windows.  The baseline is written so that a row's
  numbers do not depend on the batch it is in, and a test checks them bit for bit against per-bar
  ``predict``; learned models are served per bar (torch's kernels block by batch size, so their last bits
  would move).

A backtest is a ``paper`` run in the trade log: ``bot report`` and ``bot status`` read it unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from bot import __version__
from bot.bars.assembly import AssembledBar
from bot.config import Settings
from bot.errors import ConfigError, DataError
from bot.events import Candle
from bot.execution.limits import NotionalCap
from bot.execution.paper import PaperExecutor
from bot.feeds.replay.csvdata import Series
from bot.retrain.keeper import FixedVersion, first_version
from bot.runs.engine import Engine, EngineStats, ModelVersions
from bot.store.trade_store import TradeStore
from bot.store.writer import BarWriter
from bot.timefmt import utc_minute
from strategies.base import Predictor
from strategies.baseline import EwmaMomentumPredictor
from strategies.events import Forecast

log = logging.getLogger("bot.runs.backtest")

# Fault injection for the Ctrl-C test: SIGMA_BOT_BACKTEST_PAUSE_AT=N makes a backtest say "paused before
# decided bar N" on stderr once it has decided N bars, and wait (up to a minute) for a stop there, so that a
# signal lands mid-run at a known bar however loaded the machine is.  Unset in normal operation.
_PAUSE_AT = int(os.environ.get("SIGMA_BOT_BACKTEST_PAUSE_AT", "0") or 0)
# The decision loop awaits nothing that suspends: it yields to the event loop every this many bars, so a
# signal handler (Ctrl-C) runs and the backtest stops within that many bars.
YIELD_EVERY = 64

# Bars per trade-log transaction: large enough that SQLite's commit (an fsync) is off the profile,
# small enough that an interrupted run loses little.
COMMIT_EVERY = 500
# ... and bar-events per transaction, by default: the writer commits a batch while the engine decides the
# next, and the last one is written after the loop with nothing beside it, so a batch sized in bars would make
# that unshared tail grow with the symbols (500 bars x 300 symbols = 150,000 bar-events written alone) and hold
# as many records in memory.  About this many bar-events keep the tail short and the commits (fsyncs) a few
# per second at any symbol count (scripts/bench_throughput.py: 1.3-1.4x the rate at 100-300 symbols).
COMMIT_BAR_EVENTS = 2_000


def bars_per_commit(symbols: int, commit_every: int | None) -> int:
    """Bars per transaction: ``commit_every`` when given, else about COMMIT_BAR_EVENTS bar-events' worth
    (at most COMMIT_EVERY bars)."""
    if commit_every is not None:
        return commit_every
    return max(1, min(COMMIT_EVERY, COMMIT_BAR_EVENTS // max(1, symbols)))

Progress = Callable[[int, int, int], None]   # (bars decided, bars to decide, bar-events decided)


def series_floats(s: Series) -> np.ndarray:
    """(n, 5) float64 OHLCV of ``s``, each value the double nearest its decimal string (as the buffer makes)."""
    return np.stack([np.asarray(c, dtype=np.float64) for c in (s.open, s.high, s.low, s.close, s.volume)], axis=1)


class HistoricalBars:
    """Recorded bars of several symbols, served as the engine's candles (and as its REST ``BarSource``)."""

    def __init__(self, data: Mapping[str, Series], symbols: Sequence[str], timeframe_ms: int) -> None:
        missing = [s for s in symbols if s not in data]
        if missing:
            raise DataError(f"no data for {', '.join(missing)}")
        self.symbols = tuple(symbols)
        self.tf_ms = timeframe_ms
        self.data = {s: data[s] for s in self.symbols}
        self.times = np.unique(np.concatenate([self.data[s].open_ms for s in self.symbols]))
        # Row of each symbol at each bar time, -1 where the symbol has none: one lookup per bar-event.
        self._rows = np.full((len(self.symbols), len(self.times)), -1, dtype=np.int64)
        for j, s in enumerate(self.symbols):
            self._rows[j, np.searchsorted(self.times, self.data[s].open_ms)] = np.arange(len(self.data[s]))

    def candle(self, symbol: str, i: int) -> Candle:
        s = self.data[symbol]
        t = int(s.open_ms[i])
        return Candle(symbol, t, t + self.tf_ms - 1, Decimal(s.open[i]), Decimal(s.high[i]), Decimal(s.low[i]),
                      Decimal(s.close[i]), Decimal(s.volume[i]))

    def bar(self, k: int) -> AssembledBar:
        """The ``k``-th bar time with every symbol that has a row then, in the configured symbol order."""
        rows = self._rows[:, k].tolist()
        candles = tuple(self.candle(s, i) for s, i in zip(self.symbols, rows) if i >= 0)
        # No arrival times: nothing travelled over a network, so no latencies are recorded.
        return AssembledBar(int(self.times[k]), candles, (), len(candles) == len(self.symbols))

    def index(self, t_ms: int) -> int:
        """Position of the first bar time at or after ``t_ms``."""
        return int(np.searchsorted(self.times, t_ms))

    async def closed_bars(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> list[Candle]:
        """Every candle of ``symbols`` with open time in [start_ms, end_ms] (the engine's ``BarSource``)."""
        out = []
        for sym in symbols:
            s = self.data[sym]
            lo, hi = np.searchsorted(s.open_ms, [start_ms, end_ms + 1])
            out += [self.candle(sym, i) for i in range(int(lo), int(hi))]
        return out


class PrecomputedBaseline:
    """The baseline predictor with every bar's forecast computed up front, symbol by symbol.

    ``predict`` returns what ``base.predict`` would on the same windows: the same ``moments`` run over all
    of a symbol's windows at once, laid out in memory as the engine's batches are.  The last row of every
    window the engine passes is checked against the data, so a window that is not the data's fails loudly
    instead of trading on the wrong forecast.  Memory: three floats and a row per symbol-bar (≈ 64 bytes).
    """

    CHUNK = 2048   # windows per vectorised pass: (2048, window, 5) float64 ≈ 10 MB at window 128

    def __init__(self, base: EwmaMomentumPredictor, bars: HistoricalBars, window: int) -> None:
        self.base = base
        self.name = base.name
        self.window = window
        self._times = bars.times
        self._index = {s: j for j, s in enumerate(bars.symbols)}
        shape = (len(bars.symbols), len(bars.times))
        # Per (symbol, bar time): the forecast, and the bar the window must end with; NaN where none.
        self._mu, self._sigma = np.full(shape, np.nan), np.full(shape, np.nan)
        self._last = np.full(shape + (5,), np.nan)
        for j, sym in enumerate(bars.symbols):
            ohlcv = series_floats(bars.data[sym])
            at = np.searchsorted(bars.times, bars.data[sym].open_ms)     # row i → its bar-time column
            self._last[j, at] = ohlcv
            n = len(ohlcv) - window + 1
            if n <= 0:
                continue
            views = sliding_window_view(ohlcv, (window, 5))[:, 0]       # (n, window, 5), no copy
            for a in range(0, n, self.CHUNK):
                chunk = np.ascontiguousarray(views[a:a + self.CHUNK])    # the memory layout of np.stack
                m, sd = base.moments(chunk)
                cols = at[window - 1 + a:window - 1 + a + len(chunk)]
                self._mu[j, cols], self._sigma[j, cols] = m, sd

    @property
    def min_window(self) -> int:
        return self.base.min_window

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        mu, sigma = self.predict_moments(bar_ms, symbols, windows)
        name = self.name
        return [Forecast(s, bar_ms, m, sd, name) for s, m, sd in zip(symbols, mu, sigma)]

    def predict_moments(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray
                        ) -> tuple[list[float], list[float]]:
        """``predict``'s μ and σ as lists, without a Forecast per symbol (the scoring stage builds its own)."""
        if windows.shape[0] != len(symbols):
            raise ValueError(f"{len(symbols)} symbols but {windows.shape[0]} windows")
        if not symbols:
            return [], []
        if windows.shape[1] != self.window:
            raise ValueError(f"windows of {windows.shape[1]} bars, precomputed for {self.window}")
        k = int(np.searchsorted(self._times, bar_ms))
        if k >= len(self._times) or self._times[k] != bar_ms:
            raise RuntimeError(f"bar {bar_ms}: not a bar of the data")
        rows = [self._index[s] for s in symbols]
        mu, sigma = self._mu[rows, k], self._sigma[rows, k]
        if np.isnan(mu).any() or not np.array_equal(self._last[rows, k], windows[:, -1]):
            raise RuntimeError(f"bar {bar_ms}: the engine's window is not the data's")
        return mu.tolist(), sigma.tolist()


@dataclass
class BacktestResult:
    run_id: str
    db: str
    bars: int                     # bars decided in this invocation
    bar_events: int               # symbol-bars decided in this invocation
    seconds: float                # wall time of the decision loop (warm-up and set-up excluded)
    stats: EngineStats
    first_bar_ms: int | None
    last_bar_ms: int | None
    resumed_from_bar_ms: int | None
    stopped: bool = False
    logged_before: tuple[int, int] | None = None   # first and last bar the run held when this invocation began
    retrains: list[Any] = field(default_factory=list)

    @property
    def bar_events_per_s(self) -> float:
        return self.bar_events / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Cyclic garbage collection that costs less in the decision loop; reference counting frees as before.

    Every bar makes thousands of small container objects (events, rows, tuples) that live until their batch
    is written; with the default thresholds the collector passed over them, and over the whole market held
    in memory, about every 700 allocations: a tenth of a backtest's time.  The objects made before the loop
    (the data, the modules) are frozen out of the collector's passes and it runs every 20,000 allocations.
    Nothing decided depends on when a cycle is collected."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _pause(stop: asyncio.Event, decided: int) -> None:
    """Wait for ``stop`` (at most a minute): the fault injection of ``SIGMA_BOT_BACKTEST_PAUSE_AT``."""
    print(f"paused before decided bar {decided} (SIGMA_BOT_BACKTEST_PAUSE_AT)", file=sys.stderr, flush=True)
    try:
        await asyncio.wait_for(stop.wait(), 60)
    except TimeoutError:
        pass


async def _close_writer(writer: BarWriter, failing: bool) -> None:
    """Commit the batches handed to the writer and stop it; while already failing, only log its trouble."""
    try:
        await writer.close()
    except DataError as exc:
        if not failing:
            raise
        log.error("%s", exc)


def check_resumable(run_id: str, db: str, logged: tuple[int, int], first_ms: int, last_ms: int) -> None:
    """ConfigError unless a run that holds bars ``logged`` (first, last) can go on to the range asked for,
    ``first_ms``..``last_ms`` (bar open times): a resumed backtest keeps its first bar and is never cut short."""
    from bot.data.pages import fmt_ms

    held = f"run {run_id!r} in {db} holds bars {fmt_ms(logged[0])}..{fmt_ms(logged[1])}"
    if logged[0] != first_ms:
        raise ConfigError(f"{held}, but this backtest would start at {fmt_ms(first_ms)} (--from, or the data's "
                          f"first bars after the warm-up): a resumed run keeps its start, so pass the --from and "
                          f"data it began with, or a new --run")
    if logged[1] > last_ms:
        raise ConfigError(f"{held}, past the last bar asked for ({fmt_ms(last_ms)}, --to or the end of the data): "
                          f"a run is not cut short, so pass a new --run (or the --to it ran to)")


def first_decidable(bars: HistoricalBars, window: int, start_ms: int | None) -> int:
    """Index of the first bar time that is at or after ``start_ms`` and has ``window`` bar periods of
    history before it (the warm-up)."""
    earliest = int(bars.times[0]) + window * bars.tf_ms if len(bars.times) else 0
    return bars.index(max(earliest, start_ms if start_ms is not None else earliest))


async def run_backtest(settings: Settings, data: Mapping[str, Series], start_ms: int | None = None,
                       end_ms: int | None = None, *, predictor: Predictor | None = None,
                       commit_every: int | None = None, precompute: bool = True, write_behind: bool = True,
                       before_bar: Callable[[int, int], Any] | None = None, progress: Progress | None = None,
                       stop: asyncio.Event | None = None, models: ModelVersions | None = None) -> BacktestResult:
    """Decide every bar of ``data`` with open time in ``[start_ms, end_ms)`` and log it to ``run.db``.

    ``predictor`` replaces the one the config names (walk-forward passes its own); ``before_bar(k, t)``
    is awaited before the ``k``-th decidable bar (open ``t``) is decided, with the engine idle.
    ``write_behind``: commit from a child process (:class:`~bot.bar_writer.BarWriter`) while the engine
    goes on deciding; False writes on this process's connection, the engine waiting for each commit.
    ``models``: the model versions the forecasts name (a walk-forward's refits); by default version 1, the
    config's model, recorded in the ``models`` table.
    """
    from bot.runs.daemon import build_account, build_risk
    from strategies.registry import assess, build_predictor

    if commit_every is not None and commit_every < 1:
        raise ConfigError(f"commit_every must be at least 1, got {commit_every}")
    symbols, tf, window = settings.market.symbols, settings.market.timeframe_ms, settings.market.window
    commit_every = bars_per_commit(len(symbols), commit_every)
    bars = HistoricalBars(data, symbols, tf)
    first = first_decidable(bars, window, start_ms)
    stop_k = bars.index(end_ms) if end_ms is not None else len(bars.times)
    if first >= stop_k:
        raise DataError(f"no bar to decide: the data has {len(bars.times)} bar times and the first {window} "
                        f"(market.window) only warm the windows; check --from/--to")
    # As the daemon: the model first, so a bad checkpoint stops the run before the trade log is touched.
    if predictor is None:
        predictor = build_predictor(settings)
        if precompute and type(predictor) is EwmaMomentumPredictor:
            predictor = PrecomputedBaseline(predictor, bars, window)
    async with await TradeStore.open(settings.run.db) as store:
        # Before a session is opened: a run resumed with another range would decide bars it was not asked
        # for, or none at all.
        logged = await store.bar_range(settings.run.id)
        if logged is not None:
            check_resumable(settings.run.id, settings.run.db, logged, int(bars.times[first]),
                            int(bars.times[stop_k - 1]))
        session_no, resume = await store.begin_run(settings.run.id, settings.run.mode, settings.to_json(),
                                                   settings.config_hash, __version__, int(time.time() * 1000),
                                                   new_run_hint="pass a new --run")
        last = resume.last_bar_ms if resume is not None else None
        k0 = first if last is None else max(first, bars.index(last + 1))
        if last is not None:
            log.info("resuming backtest %r after bar %s", settings.run.id, utc_minute(last))
        edges = await store.recent_edges(settings.run.id, settings.risk.gate.band_bars)
        writer = await BarWriter(store).start() if write_behind else None
        executor = PaperExecutor(build_account(settings, resume), NotionalCap.from_settings(settings))
        engine = Engine(settings, settings.run.id, writer or store, executor,
                        assess(settings, predictor, resume.forecasts if resume is not None else ()),
                        build_risk(settings, resume, edges=edges),
                        last, history=bars)
        engine.offload_predict = False
        engine.commit_every = commit_every
        engine.models = models if models is not None else FixedVersion(settings.run.id, first_version(settings))
        reason = "error"
        decided = events = 0
        seconds = 0.0
        try:
            if k0 < stop_k:
                t0 = int(bars.times[k0])
                engine.warm_up(await bars.closed_bars(symbols, t0 - window * tf, t0 - tf))
            total = stop_k - k0
            started = time.perf_counter()
            # The risk manager's matrices are small: one BLAS thread is faster than two fighting the writer.
            with threadpool_limits(limits=1, user_api="blas"), _fewer_gc_passes():
                for k in range(k0, stop_k):
                    if decided % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                    if _PAUSE_AT and decided == _PAUSE_AT and stop is not None:
                        await _pause(stop, decided)
                    if stop is not None and stop.is_set():
                        break
                    if before_bar is not None:
                        await before_bar(k - first, int(bars.times[k]))
                    bar = bars.bar(k)
                    await engine.process_bar(bar)
                    if engine.stats.unwritten:
                        raise DataError(f"{settings.run.db}: trade log not writable; the backtest stops "
                                        f"(rerun to resume after the last committed bar)")
                    decided += 1
                    events += len(bar.candles)
                    if progress is not None and (decided % 64 == 0 or k == stop_k - 1):
                        progress(decided, total, events)
            await engine.flush()
            if engine.stats.unwritten:
                raise DataError(f"{settings.run.db}: the last {engine.stats.unwritten} bar(s) could not be written")
            if writer is not None:
                await writer.drain()
            seconds = time.perf_counter() - started
            reason = "signal" if stop is not None and stop.is_set() else "end_of_data"
        finally:
            if writer is not None:
                await _close_writer(writer, failing=reason == "error")
            await store.end_session(settings.run.id, session_no, int(time.time() * 1000), reason)
    return BacktestResult(settings.run.id, settings.run.db, decided, events, seconds, engine.stats,
                          int(bars.times[k0]) if decided else None, engine.last_bar_ms, last,
                          stopped=reason == "signal", logged_before=logged)
