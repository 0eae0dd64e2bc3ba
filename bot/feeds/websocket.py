"""The live feed: a websocket client for Binance combined kline streams that heals itself.

It reads frames as fast as they come, parses them (pure, :mod:`bot.feeds.binance`)
and puts each closed candle, stamped with its receive time, on an unbounded
queue.  The engine consumes the queue at its own pace, so a slow predictor never
stalls the reader.  Malformed frames are logged with the reason, counted and
skipped.

A connection ends, and a new one is opened, when:

* the link drops or the server closes it — after a pause with exponential backoff
  and full jitter (uniform in ``[0, min(reconnect_max_s, reconnect_base_s × 2^(n-1))]``
  for the n-th failure in a row; a connection that delivered a closed kline resets n);
* the link is half-open: websockets' keepalive ping gets no pong within
  ``ping_timeout_s``, or no frame at all arrives for ``silence_timeout_s``
  (a kline stream sends several frames a minute);
* the server announces ``serverShutdown`` — at once;
* the connection has lived ``max_connection_s`` (Binance cuts every connection at
  24 h: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams) — at once;
* a frame exceeds ``max_frame_bytes``: websockets closes with 1009; counted as a
  rejection ``"frame too large"``.

Every ended connection is reported as a :class:`Disconnected` on :attr:`KlineFeed.events`
(and to ``on_disconnect``), so the engine can backfill the bars missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import CloseCode

from bot.events import Candle
from bot.feeds.binance import Status, combined_stream_url, exchange_id, parse_kline_frame, reason_kind

log = logging.getLogger("bot.feed")

# Binance kline frames are < 1 KB; anything near this is hostile or broken.
MAX_FRAME_BYTES = 1 << 20
EVENTS_MAX = 1000  # Disconnected events kept for a consumer that does not read them
_LOG_FIRST = 10  # rejections of one kind logged one by one, then every _LOG_EVERY-th


@dataclass(frozen=True, slots=True)
class Received:
    """A closed candle and the ``time.perf_counter()`` at which its frame arrived."""

    candle: Candle
    received_at: float


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A connection that had been open ended; bars may have been missed from ``last_closed_open_ms`` on.

    ``reason`` is one of ``"dropped"`` (no close frame), ``"closed by server"``,
    ``"ping timeout"``, ``"silence"``, ``"server shutdown"``, ``"lifetime"``,
    ``"frame too large"``.  ``last_closed_open_ms`` is the open time of the newest
    closed kline received over any connection so far (None before the first).
    """

    reason: str
    detail: str
    connection_no: int
    closed_received: int  # closed klines this connection delivered
    last_closed_open_ms: int | None
    at: float  # time.perf_counter()


class KlineFeed:
    """Combined kline stream client; run :meth:`run` as a task and read :attr:`queue`."""

    def __init__(self, ws_url: str, symbols: Sequence[str], timeframe: str, timeframe_ms: int,
                 reconnect_max_s: float = 30.0, *,
                 reconnect_base_s: float = 0.5,
                 ping_interval_s: float | None = 20.0,
                 ping_timeout_s: float | None = 20.0,
                 silence_timeout_s: float = 120.0,
                 max_connection_s: float = 23.5 * 3600,
                 max_frame_bytes: int = MAX_FRAME_BYTES,
                 open_timeout_s: float = 10.0,
                 min_connection_s: float = 1.0,
                 close_timeout_s: float = 2.0,
                 clock: Callable[[], float] | None = time.time,
                 on_disconnect: Callable[[Disconnected], None] | None = None,
                 rng: random.Random | None = None) -> None:
        if min(reconnect_max_s, reconnect_base_s) < 0 or silence_timeout_s <= 0 or max_connection_s <= 0 \
                or max_frame_bytes < 1 or open_timeout_s <= 0:
            raise ValueError("KlineFeed timeouts and sizes must be positive")
        self.url = combined_stream_url(ws_url, symbols, timeframe)
        self.subscribed = {exchange_id(s): s for s in symbols}
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_ms
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_base_s = reconnect_base_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.silence_timeout_s = silence_timeout_s
        self.max_connection_s = max_connection_s
        self.max_frame_bytes = max_frame_bytes
        self.open_timeout_s = open_timeout_s
        # A connection shorter than this is reopened with backoff even after a shutdown notice or at its
        # lifetime, so that a server announcing shutdown on every connect is not hammered.
        self.min_connection_s = min_connection_s
        self.close_timeout_s = close_timeout_s  # a peer that does not finish the close handshake is cut off then
        self.clock = clock  # wall clock for the parser's "timestamp out of range" check; None: no check
        self.on_disconnect = on_disconnect
        self._rng = rng or random.Random()
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.events: asyncio.Queue[Disconnected] = asyncio.Queue(maxsize=EVENTS_MAX)
        self.connected = asyncio.Event()
        self.counts: Counter[Status] = Counter()  # frames: closed / ignored / rejected / shutdown
        self.rejections: Counter[str] = Counter()  # rejection kind → count
        self.rejection_examples: dict[str, str] = {}  # rejection kind → latest full reason
        self.disconnects: Counter[str] = Counter()  # Disconnected.reason → count
        self.connections = 0  # connections opened
        self.reconnects = 0  # pauses before a new connection attempt (after a drop or a failed attempt)
        self.last_closed_open_ms: int | None = None

    # -- connection loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Read until cancelled, reconnecting after every drop."""
        failures = 0
        while True:
            opened_at = time.monotonic()
            reason, delivered = await self._session()
            lived_s = time.monotonic() - opened_at
            if reason in ("server shutdown", "lifetime") and lived_s >= self.min_connection_s:
                failures, delay = 0, 0.0
            else:
                failures = 1 if delivered else failures + 1
                delay = self.backoff_s(failures)
            self.reconnects += 1
            log.info("feed reconnecting in %.3f s (%s)", delay, reason)
            await asyncio.sleep(delay)

    def backoff_s(self, failures: int) -> float:
        """Full-jitter pause before the next attempt after ``failures`` failures in a row."""
        cap = min(self.reconnect_max_s, self.reconnect_base_s * 2 ** min(max(failures, 1) - 1, 30))
        return self._rng.uniform(0.0, cap)

    async def _session(self) -> tuple[str, bool]:
        """One connection, from attempt to end: (why it ended, whether it delivered a closed kline)."""
        closed_before = self.counts["closed"]
        number = self.connections + 1
        try:
            async with connect(self.url, max_size=self.max_frame_bytes, open_timeout=self.open_timeout_s,
                               ping_interval=self.ping_interval_s, ping_timeout=self.ping_timeout_s,
                               close_timeout=self.close_timeout_s) as ws:
                self.connections += 1
                self.connected.set()
                log.info("feed connected to %s (connection %d)", self.url, number)
                try:
                    reason, detail = await self._read(ws)
                except ConnectionClosed as exc:
                    reason, detail = self._classify(exc)
        except asyncio.CancelledError:
            raise
        except (OSError, WebSocketException, TimeoutError) as exc:
            if self.connections < number:  # never opened
                log.warning("feed connection to %s failed: %s", self.url, exc)
                return "connect failed", False
            reason, detail = (self._classify(exc) if isinstance(exc, ConnectionClosed)
                              else ("dropped", f"{type(exc).__name__}: {exc}"))
        finally:
            self.connected.clear()
        delivered = self.counts["closed"] - closed_before
        self._report(Disconnected(reason, detail, number, delivered, self.last_closed_open_ms,
                                  time.perf_counter()))
        return reason, delivered > 0

    async def _read(self, ws: ClientConnection) -> tuple[str, str]:
        """Read frames until a reason to reconnect; ConnectionClosed propagates."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_connection_s
        try:
            async with asyncio.timeout(None) as timer:
                while True:
                    timer.reschedule(min(loop.time() + self.silence_timeout_s, deadline))
                    frame = await ws.recv()
                    if self.on_frame(frame, time.perf_counter()) == "shutdown":
                        await ws.close(CloseCode.NORMAL_CLOSURE, "server shutdown announced")
                        return "server shutdown", "the server announced serverShutdown"
        except TimeoutError:
            if loop.time() >= deadline:
                await ws.close(CloseCode.NORMAL_CLOSURE, "connection lifetime reached")
                return "lifetime", f"connection open for {self.max_connection_s:g} s; reconnecting before " \
                                   "the exchange cuts it"
            # A half-open link does not finish a close handshake: cut it.
            ws.transport.abort()
            return "silence", f"no frame for {self.silence_timeout_s:g} s"

    def _classify(self, exc: ConnectionClosed) -> tuple[str, str]:
        sent, rcvd = exc.sent, exc.rcvd
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            self._reject(f"frame too large: a frame over {self.max_frame_bytes} bytes (closed with 1009)")
            return "frame too large", str(exc)
        if sent is not None and sent.code == CloseCode.INTERNAL_ERROR and "ping" in sent.reason:
            return "ping timeout", str(exc)
        if rcvd is None:
            return "dropped", str(exc)
        return "closed by server", str(exc)

    def _report(self, event: Disconnected) -> None:
        self.disconnects[event.reason] += 1
        log.warning("feed connection %d ended (%s: %s) after %d closed klines; last closed bar %s",
                    event.connection_no, event.reason, event.detail, event.closed_received,
                    event.last_closed_open_ms)
        if self.events.full():
            self.events.get_nowait()  # keep the newest
        self.events.put_nowait(event)
        if self.on_disconnect is not None:
            try:
                self.on_disconnect(event)
            except Exception:
                log.exception("on_disconnect hook failed")

    # -- frames ---------------------------------------------------------------------------

    def on_frame(self, frame: str | bytes, received_at: float) -> Status:
        """Parse one frame, queue its closed candle or count its rejection; return its status."""
        now_ms = int(self.clock() * 1000) if self.clock is not None else None
        parsed = parse_kline_frame(frame, self.subscribed, self.timeframe, self.timeframe_ms, now_ms)
        if parsed.status == "rejected":
            self._reject(parsed.reason)
            return "rejected"
        self.counts[parsed.status] += 1
        if parsed.status == "closed" and parsed.candle is not None:
            self.queue.put_nowait(Received(parsed.candle, received_at))
            if self.last_closed_open_ms is None or parsed.candle.open_ms > self.last_closed_open_ms:
                self.last_closed_open_ms = parsed.candle.open_ms
        return parsed.status

    def _reject(self, reason: str) -> None:
        kind = reason_kind(reason)
        self.counts["rejected"] += 1
        self.rejections[kind] += 1
        self.rejection_examples[kind] = reason[:300]
        n = self.rejections[kind]
        if n <= _LOG_FIRST or n % 1000 == 0:
            log.warning("feed frame rejected (%s #%d): %s", kind, n, reason[:300])


__all__ = ["MAX_FRAME_BYTES", "Disconnected", "KlineFeed", "Received"]
