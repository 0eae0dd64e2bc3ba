"""The live feed: a websocket client for Binance combined kline streams.

It reads frames as fast as they come, parses them (pure, :mod:`bot.feeds.binance`)
and puts each closed candle, stamped with its receive time, on an unbounded
queue.  The engine consumes the queue at its own pace, so a slow predictor never
stalls the reader.  Malformed frames are logged with the reason, counted and
skipped.  On a dropped connection it reconnects with exponential backoff and
jitter; finding and backfilling the hours missed meanwhile is the engine's job.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import connect

from bot.events import Candle
from bot.feeds.binance import combined_stream_url, exchange_id, parse_kline_frame

log = logging.getLogger("bot.feed")

# Binance kline frames are < 1 KB; anything near this is hostile or broken.
MAX_FRAME_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Received:
    """A closed candle and the ``time.perf_counter()`` at which its frame arrived."""

    candle: Candle
    received_at: float


class KlineFeed:
    def __init__(self, ws_url: str, symbols: Sequence[str], timeframe: str, timeframe_ms: int,
                 reconnect_max_s: float = 30.0) -> None:
        self.url = combined_stream_url(ws_url, symbols, timeframe)
        self.subscribed = {exchange_id(s): s for s in symbols}
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_ms
        self.reconnect_max_s = reconnect_max_s
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.counts: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.connections = 0

    async def run(self) -> None:
        """Read until cancelled, reconnecting after every drop."""
        attempt = 0
        while True:
            try:
                async with connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=10,
                                   ping_interval=20, ping_timeout=20) as ws:
                    self.connections += 1
                    attempt = 0
                    self.connected.set()
                    log.info("feed connected to %s", self.url)
                    async for frame in ws:
                        self.on_frame(frame, time.perf_counter())
                    log.warning("feed connection closed by the server; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                log.warning("feed connection to %s failed: %s", self.url, exc)
            finally:
                self.connected.clear()
            attempt += 1
            delay = min(self.reconnect_max_s, 0.5 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
            self.counts["reconnects"] += 1
            await asyncio.sleep(delay)

    def on_frame(self, frame: str | bytes, received_at: float) -> None:
        parsed = parse_kline_frame(frame, self.subscribed, self.timeframe, self.timeframe_ms)
        self.counts[parsed.status] += 1
        if parsed.status == "closed" and parsed.candle is not None:
            self.queue.put_nowait(Received(parsed.candle, received_at))
        elif parsed.status == "rejected":
            reason = parsed.reason
            self.rejections[reason.split(":")[0][:60]] += 1
            log.warning("feed frame rejected: %s", reason)
