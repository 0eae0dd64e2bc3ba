"""A slow predictor never stalls the websocket reader: frames keep arriving while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.execution.paper import PaperAccount, PaperExecutor
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.websocket import KlineFeed
from bot.runs.daemon import build_risk
from bot.runs.engine import Engine
from bot.store.trade_store import TradeStore
from strategies.baseline import EwmaMomentumPredictor
from strategies.events import Forecast

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
WINDOW = 32


class SlowPredictor:
    """The baseline, but each call blocks its thread for ``delay_s`` and records how many
    closed klines the feed had read when the call started and when it ended."""

    name = "slow_baseline"

    def __init__(self, feed: KlineFeed, delay_s: float) -> None:
        self.inner = EwmaMomentumPredictor(momentum_bars=4)
        self.feed = feed
        self.delay_s = delay_s
        self.seen: list[tuple[int, int]] = []

    @property
    def min_window(self) -> int:
        return self.inner.min_window

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        before = self.feed.counts["closed"]
        time.sleep(self.delay_s)  # blocks the worker thread, as a heavy model would
        self.seen.append((before, self.feed.counts["closed"]))
        return self.inner.predict(bar_ms, symbols, windows)


@pytest.mark.asyncio
async def test_feed_keeps_reading_while_the_predictor_blocks(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, 300, 1_704_067_200_000, seed=3)
    # History is streamed too: no backfill, the windows fill from the stream.
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.01, start_index=0) as exchange:
        settings = Settings().with_overrides(
            run={"db": str(tmp_path / "t.sqlite"), "id": "slow"},
            market={"symbols": SYMBOLS, "window": WINDOW}, feed={"backfill": False})
        feed = KlineFeed(exchange.ws_url, SYMBOLS, "1h", settings.market.timeframe_ms)
        predictor = SlowPredictor(feed, delay_s=0.4)
        async with await TradeStore.open(settings.run.db) as store:
            await store.begin_run("slow", "paper", settings.to_json(), settings.config_hash, "test", 0)
            executor = PaperExecutor(PaperAccount.from_settings(settings.paper, symbols=SYMBOLS))
            engine = Engine(settings, "slow", store, executor, predictor,  # type: ignore[arg-type]
                            build_risk(settings, None))
            task = asyncio.create_task(feed.run())
            try:
                await asyncio.wait_for(engine.run(feed.queue, asyncio.Event(), max_bars=WINDOW + 2), 30)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert len(predictor.seen) == 3
    before, after = predictor.seen[0]
    # At 10 ms a bar, 0.4 s of blocked prediction spans ~40 bars of 2 symbols.
    assert after - before >= 20, f"the feed read only {after - before} closed klines while the predictor ran"
