"""Wire the daemon's parts together from the settings and run it until told to stop.

    store (resume) → executor (paper: restored account; live: reconciled with the exchange)
          → predictor → feed task → backfill → engine

This is the only place that knows every part; each part knows only its inputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot import __version__
from bot.config import Settings
from bot.errors import ConfigError, FeedError
from bot.events import Candle
from bot.execution import Executor
from bot.execution.limits import NotionalCap
from bot.execution.paper import PaperAccount, PaperExecutor, PaperSnapshot
from bot.feeds.backfill import fetch_range, make_exchange, open_exchange, unlisted_symbols
from bot.feeds.retry import DEFAULT_POLICY, RetryPolicy
from bot.feeds.websocket import KlineFeed, Received
from bot.notify.delivery import Notifier, build_channels
from bot.retrain.keeper import ModelKeeper, check_folder
from bot.runs.engine import Engine, EngineStats
from bot.store.rejections import RejectionTally
from bot.store.trade_store import ResumeState, TradeStore
from bot.timefmt import utc_minute, utc_span
from risk.band import prepare_band
from risk.manager import RiskManager, restored_state
from risk.state import RiskState, TradingState
from strategies.registry import build_predictor

log = logging.getLogger("bot.runs.daemon")


@dataclass(frozen=True, slots=True)
class DaemonResult:
    run_id: str
    session_no: int
    stats: EngineStats
    feed_counts: dict[str, int]
    reconnects: int
    rejections: dict[str, int]
    resumed_from_bar_ms: int | None
    # This session's retrains: bars decided while a worker ran, seconds due bars waited, verdicts, swaps.
    models: dict[str, Any] = field(default_factory=dict)


def build_account(settings: Settings, resume: ResumeState | None) -> PaperAccount:
    """A fresh account, or the one the trade log left at its last committed bar."""
    snapshot = None
    if resume is not None:
        snapshot = PaperSnapshot(resume.cash, resume.positions, resume.marks, resume.open_orders, resume.margins)
    return PaperAccount.from_settings(settings.paper, snapshot=snapshot, symbols=settings.market.symbols)


def build_risk(settings: Settings, resume: ResumeState | None, initial_equity: Decimal | None = None,
               costs: Mapping[str, float] | float | None = None,
               edges: Mapping[str, Sequence[float]] | None = None) -> RiskManager:
    """A risk manager in the trading state the trade log left, or ACTIVE at the initial equity
    (paper: ``initial_cash``; live: the account's cash at the start)."""
    logged = resume.risk_state if resume is not None else None
    start = settings.paper.initial_cash if initial_equity is None else initial_equity
    state = restored_state(logged) if logged is not None else RiskState.initial(start)
    entries = dict(logged.entry_bars) if logged is not None else {}
    if logged is not None and state.state is not TradingState.ACTIVE:
        log.warning("resuming in trading state %s since bar %s: %s", state.state.name, utc_minute(state.since_bar_ms),
                    state.reason)
    if settings.risk.gate.rule == "net_edge" and settings.risk.gate.band_bars:
        # The no-trade band's compiled code, loaded now (~0.5 s from numba's cache, ~1.3 s compiled afresh)
        # rather than at the first bar with a signal, where a live daemon would hold that bar for it.
        prepare_band()
    return RiskManager(settings.risk, settings.market.symbols, settings.market.timeframe_ms,
                       settings.paper.qty_step, state, entries, resume.forecasts if resume is not None else (),
                       costs if costs is not None else paper_fill_cost(settings), edges)


def paper_fill_cost(settings: Settings) -> float:
    """One paper fill's taker fee and slippage as a fraction of notional (the net-edge rule's cost)."""
    return float((settings.paper.taker_fee_bps + settings.paper.slippage_bps) / 10_000)


def fill_costs(settings: Settings, executor: Any) -> dict[str, float] | float:
    """One fill's cost per symbol: the exchange's taker fee where the executor knows it (live), plus the
    configured slippage; the paper executor's fee and slippage otherwise."""
    fee_rate = getattr(executor, "taker_fee_rate", None)
    if fee_rate is None:
        return paper_fill_cost(settings)
    slippage = float(settings.paper.slippage_bps / 10_000)
    costs = {}
    for s in settings.market.symbols:
        rate = fee_rate(s)
        costs[s] = (float(rate) if rate is not None else float(settings.paper.taker_fee_bps / 10_000)) + slippage
    return costs


class RestBarSource:
    """Closed bars through ccxt for the engine's holes; rejected rows are counted by reason."""

    def __init__(self, exchange: Any, timeframe: str, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.exchange = exchange
        self.timeframe = timeframe
        self.policy = policy
        self.rejections: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    async def closed_bars(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> list[Candle]:
        out: list[Candle] = []
        for symbol in symbols:
            try:
                candles, rejected = await fetch_range(self.exchange, symbol, self.timeframe, start_ms, end_ms,
                                                      policy=self.policy)
            except FeedError as exc:
                log.warning("REST fetch of %s bars %s failed: %s", symbol, utc_span(start_ms, end_ms), exc)
                continue
            out += candles
            for why in rejected:
                key = why.split(":")[0][:80]
                self.rejections[key] += 1
                self.examples[key] = why
        return out


@asynccontextmanager
async def open_dashboard(settings: Settings) -> AsyncIterator[None]:
    """``[api] enabled``: the dashboard and API over this run's trade log, served until the daemon stops."""
    if not settings.api.enabled:
        yield
        return
    from bot.web.serve import BackgroundDashboard, api_token

    async with BackgroundDashboard(settings.run.db, settings.api.host, settings.api.port, api_token()):
        yield


@asynccontextmanager
async def open_executor(settings: Settings, store: TradeStore, session_no: int,
                        resume: ResumeState | None, live: bool = False) -> AsyncIterator[Executor]:
    """The paper executor, or (``run.mode = "live"`` and ``live``, the command line's ``--live``) the exchange
    executor, reconciled with the exchange at start and shut down (open orders cancelled if configured) at
    exit.  ``run.mode = "live"`` without ``live`` is refused where the exchange executor is built."""
    if settings.run.mode != "live":
        yield PaperExecutor(build_account(settings, resume), NotionalCap.from_settings(settings))
        return
    from bot.config.secrets import load_credentials
    from bot.execution.live import open_exchange_executor

    logged = await store.logged_trades(settings.run.id)
    executor = await open_exchange_executor(settings, load_credentials(), resume, logged, live_flag=live)
    try:
        yield executor
    finally:
        await executor.aclose()


async def check_markets(settings: Settings) -> None:
    """ConfigError if the exchange does not trade a symbol of ``market.symbols``; checked before the trade log
    is opened.  If the markets cannot be had (the exchange is down), start anyway: the feed rides it out."""
    f = settings.feed
    policy = RetryPolicy(max_attempts=f.rest_max_attempts, max_delay_s=f.rest_retry_max_s,
                         max_retry_after_s=f.rest_max_retry_after_s)
    async with open_exchange(f.rest_url, timeout_s=f.rest_timeout_s) as exchange:
        try:
            unknown = await unlisted_symbols(exchange, settings.market.symbols, policy=policy)
        except FeedError as exc:
            log.warning("could not check market.symbols against the exchange's markets (%s); starting anyway", exc)
            return
    if unknown:
        raise ConfigError(f"config key 'market.symbols': the exchange at feed.rest_url does not trade "
                          f"{', '.join(unknown)}; remove them or fix the symbol")


async def warm_up(settings: Settings, engine: Engine, source: RestBarSource, until_ms: int) -> int:
    """Fill the windows with the ``window`` closed bars of each symbol before ``until_ms``."""
    tf = settings.market.timeframe_ms
    candles = await source.closed_bars(settings.market.symbols, until_ms - settings.market.window * tf,
                                       until_ms - tf)
    engine.warm_up(candles)
    return len(candles)


async def _first_or_stop(queue: asyncio.Queue[Received], stop: asyncio.Event) -> Received | None:
    """The first closed candle the stream delivers, or None if told to stop first."""
    get = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({get, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if get.done():
        return get.result()
    get.cancel()
    return None


async def run_daemon(settings: Settings, stop: asyncio.Event, max_bars: int | None = None,
                     stop_after_bar_ms: int | None = None, live: bool = False) -> DaemonResult:
    """Run until ``stop``, ``max_bars`` or ``stop_after_bar_ms``; ``live`` is the command line's ``--live``."""
    run_id = settings.run.id
    if settings.api.enabled:   # a dashboard it may not serve stops start-up before anything is opened
        from bot.web.serve import api_token, check_bind

        check_bind(settings.api.host, api_token())
    # The model first: a missing or mismatched checkpoint stops start-up before anything is opened.
    predictor = build_predictor(settings)
    channels = build_channels(settings.notify)   # a Telegram chat without BOT_TELEGRAM_TOKEN stops start-up here
    await check_markets(settings)   # an unknown symbol stops start-up before the trade log is touched
    if settings.model.retrain.enabled:   # so does a checkpoint folder it may not write
        check_folder(settings)
    now_ms = int(time.time() * 1000)
    async with await TradeStore.open(settings.run.db) as store, open_dashboard(settings), \
            Notifier(channels, settings.notify, run_id) as notifier:
        # The model the run serves (after a retrain, its checkpoint), before a session is opened: a checkpoint
        # gone since the last stop stops start-up here, with the session log as it was.
        serving = await ModelKeeper.serving_model(settings, store, run_id, predictor)
        session_no, resume = await store.begin_run(run_id, settings.run.mode, settings.to_json(),
                                                   settings.config_hash, __version__, now_ms)
        last_bar = resume.last_bar_ms if resume else None
        if resume is not None:
            log.info("resuming run %r after bar %s: cash %s, %d position(s), %d open order(s)", run_id,
                     utc_minute(resume.last_bar_ms), resume.cash, len(resume.positions), len(resume.open_orders))
        # The serving model version (the config's, or a retrained one the models table names) and its retrains.
        keeper = await ModelKeeper.open(settings, store, run_id, predictor, resume.forecasts if resume else (),
                                        raw=serving)
        f = settings.feed
        exchange = make_exchange(f.rest_url, timeout_s=f.rest_timeout_s)
        policy = RetryPolicy(max_attempts=f.rest_max_attempts, max_delay_s=f.rest_retry_max_s,
                             max_retry_after_s=f.rest_max_retry_after_s)
        source = RestBarSource(exchange, settings.market.timeframe, policy)
        executors = open_executor(settings, store, session_no, resume, live)
        try:
            executor = await executors.__aenter__()
        except BaseException:
            await exchange.close()
            raise
        feed = KlineFeed(f.ws_url, settings.market.symbols, settings.market.timeframe, settings.market.timeframe_ms,
                         f.reconnect_max_s, reconnect_base_s=f.reconnect_base_s,
                         ping_interval_s=f.ping_interval_s, ping_timeout_s=f.ping_interval_s,
                         silence_timeout_s=f.silence_timeout_s, max_connection_s=f.max_connection_s,
                         max_frame_bytes=f.max_frame_bytes)
        # Every part's rejections in one tally, committed with each bar (a kill -9 loses only the bar in progress).
        tally = RejectionTally(session_no)
        tally.follow("websocket", feed.rejections, feed.rejection_examples)
        tally.follow("rest", source.rejections, source.examples)
        tally.follow("exchange", getattr(executor, "rejections", {}), getattr(executor, "rejection_examples", {}))
        engine = Engine(settings, run_id, store, executor, keeper.predictor,
                        build_risk(settings, resume, None if settings.run.mode != "live" else executor.cash,
                                   fill_costs(settings, executor),
                                   await store.recent_edges(run_id, settings.risk.gate.band_bars)),
                        last_bar, history=source, rejections=tally)
        engine.accept_commands = True
        engine.record_timings = True
        engine.models = keeper
        engine.observer = notifier.watcher(engine.risk.state.state.name, resume.forecasts if resume else ())
        await engine.restore_operator_block()
        feed_task = asyncio.create_task(feed.run(), name="kline-feed")
        reason = "error"
        try:
            # Subscribe first, then warm up through REST: the windows end where the decisions
            # start — at the first bar the stream delivers, or after a restart at the last bar
            # decided (the engine then fetches and decides the bars missed in between).
            log.info("waiting for the first closed %s bar of the stream (up to one bar period)",
                     settings.market.timeframe)
            first = await _first_or_stop(feed.queue, stop)
            if first is not None:
                if settings.feed.backfill:
                    until = first.candle.open_ms if last_bar is None else last_bar + settings.market.timeframe_ms
                    n = await warm_up(settings, engine, source, until)
                    log.info("warm-up: %d closed bars backfilled through ccxt", n)
                await engine.run(feed.queue, stop, max_bars, initial=(first,), stop_after_bar_ms=stop_after_bar_ms)
            reason = "signal" if stop.is_set() else "max_bars"
        finally:
            feed_task.cancel()
            await asyncio.gather(feed_task, return_exceptions=True)
            await keeper.close()
            await exchange.close()
            try:
                await executors.__aexit__(None, None, None)
            finally:
                await store.write_rejections(run_id, tally.rows())
            await store.end_session(run_id, session_no, int(time.time() * 1000), reason)
    return DaemonResult(run_id, session_no, engine.stats, dict(feed.counts), feed.reconnects, dict(feed.rejections),
                        last_bar, keeper.session_stats())
