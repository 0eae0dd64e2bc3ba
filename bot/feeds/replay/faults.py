"""Fault injection for the replay exchange: what real exchanges do to their clients, on demand.

:class:`Faults` is the collaborator a :class:`~bot.feeds.replay.server.ReplayExchange` holds as
``exchange.faults``: it owns the fault state and counters, the methods that arm the faults, and the
hooks the server asks while it streams and answers REST.  It sends through the exchange's
:class:`~bot.feeds.replay.streams.Connections` and reads its clock; it never imports the server.
Every method works while the replay runs; the counters are public attributes:

* :meth:`Faults.drop_connections` — abort every connection (no close frame).
* :meth:`Faults.go_silent` — a half-open link: connections stay open, nothing is sent and nothing
  read (pings go unanswered) while the clock and REST go on.
* :meth:`Faults.duplicate_closed`, :meth:`Faults.reorder_next_bar`, :meth:`Faults.skip_closed` —
  repeated, out-of-order and missing closed klines.
* :meth:`Faults.falsify_closed` — a well-formed but false closed kline (an absurd price), alone or
  followed by the true one (a conflicting duplicate); REST keeps serving the true bar.
* :meth:`Faults.send_server_shutdown` — Binance's ``serverShutdown`` event, then a close.
* :meth:`Faults.inject_frame` — any frame, of any size, to every client.
* :meth:`Faults.fail_next_rest`, :meth:`Faults.rest_hostile` — REST error answers as Binance gives
  them (:func:`fault_response`), and hostile kline rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.http11 import Response

from bot.feeds.replay.responses import json_response
from bot.feeds.replay.streams import Connections, _Event

log = logging.getLogger("bot.replay")

REST_FAULTS = ("429", "418", "503", "500", "timeout", "bad_symbol", "garbage_json")


# ---------------------------------------------------------------------------
# REST fault answers
# ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _RestFault:
    kind: str
    retry_after: int | None
    delay_s: float


def fault_response(fault: _RestFault, now_ms: int) -> Response:
    """Binance's answer for a REST fault kind (``timeout`` answers 504 to whoever still listens).

    https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-api-information
    """
    kind = fault.kind
    if kind in ("429", "418"):
        wait = fault.retry_after if fault.retry_after is not None else (1 if kind == "429" else 120)
        msg = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. Please use "
               "WebSocket Streams for live updates to avoid polling the API." if kind == "429" else
               f"Way too many requests; IP(127.0.0.1) banned until {now_ms + wait * 1000}. Please use "
               "WebSocket Streams for live updates to avoid bans.")
        return json_response(int(kind), {"code": -1003, "msg": msg}, (("Retry-After", str(wait)),))
    if kind == "503":
        return json_response(503, b"Service Unavailable", content_type="text/plain")
    if kind == "500":
        return json_response(500, {"code": -1000,
                                   "msg": "An unknown error occurred while processing the request."})
    if kind == "bad_symbol":
        return json_response(400, {"code": -1121, "msg": "Invalid symbol."})
    if kind == "garbage_json":
        return json_response(200, b'[[1704067200000,"42000.1","42100.0",<html>502 Bad Gateway</html>')
    return json_response(504, {"code": -1007, "msg": "Timeout waiting for response from backend server."})


# ---------------------------------------------------------------------------
# The faults
# ---------------------------------------------------------------------------

class Faults:
    """Fault state, counters, the methods that arm faults, and the hooks the exchange serves them through.

    ``connections`` are the exchange's websocket clients (aborted, paused and sent extra frames here);
    ``clock`` returns the simulated exchange time in ms (for ``serverShutdown`` and REST error bodies).
    """

    def __init__(self, connections: Connections, clock: Callable[[], int]) -> None:
        self._connections = connections
        self._clock = clock
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._silent_until = 0.0  # time.monotonic() until which nothing is sent
        self._silence_timer: asyncio.TimerHandle | None = None
        self._paused: set[ServerConnection] = set()
        self._duplicates_left = 0
        self._reorder_next = False
        self._skips: Counter[str] = Counter()  # market id → closed klines still to withhold
        self._falsify: dict[str, tuple[Callable[[dict[str, Any]], None], bool]] = {}  # market id → (change, then true)
        self._previous_closed: list[_Event] = []
        self._rest_faults: deque[_RestFault] = deque()
        self._rest_transforms: deque[Callable[[list[list[Any]]], Any]] = deque()
        self.drops = 0  # connections aborted by drop_connections
        self.shutdowns_sent = 0  # serverShutdown events sent
        self.frames_withheld = 0  # kline frames not sent while silent
        self.closed_skipped = 0  # closed klines withheld by skip_closed
        self.closed_falsified = 0  # closed klines sent altered by falsify_closed
        self.frames_injected = 0  # frames sent by inject_frame (one per client)
        self.rest_faults_served: Counter[str] = Counter()

    async def aclose(self) -> None:
        """End a silence, cancel the delayed closes and release REST answers held by a ``timeout`` fault."""
        self._closing.set()
        self._end_silence()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- websocket: connections ----------------------------------------------------------

    async def drop_connections(self) -> int:
        """Abort every client connection, as a network failure would: no close frame, just gone.

        Waits for a broadcast in progress to finish first, so that every closed kline
        logged in the exchange's ``closed_sent`` was handed to the socket before the drop.
        Returns (and adds to :attr:`drops`) the number of connections dropped.
        """
        dropped = await self._connections.abort_all()
        self.drops += dropped
        if dropped:
            log.info("dropped %d connection(s)", dropped)
        return dropped

    # -- websocket: silence --------------------------------------------------------------

    def go_silent(self, seconds: float) -> None:
        """For ``seconds``, send nothing and read nothing on any connection (a half-open link).

        Connections stay open; pings go unanswered because nothing is read.  The
        replay clock keeps running: bars close meanwhile, are served by REST and are
        never streamed.  The server's own keepalive pings (every 20 s) still go out.
        """
        self._silent_until = max(self._silent_until, time.monotonic() + seconds)
        for ws in list(self._connections.clients):
            self._pause(ws)
        if self._silence_timer is not None:
            self._silence_timer.cancel()
        self._silence_timer = asyncio.get_running_loop().call_later(
            self._silent_until - time.monotonic(), self._end_silence)
        log.info("going silent for %.3f s", seconds)

    def _silent(self) -> bool:
        return time.monotonic() < self._silent_until

    def _pause(self, ws: ServerConnection) -> None:
        if ws not in self._paused:
            ws.transport.pause_reading()
            self._paused.add(ws)

    def _end_silence(self) -> None:
        if self._silence_timer is not None:
            self._silence_timer.cancel()
            self._silence_timer = None
        self._silent_until = 0.0
        for ws in self._paused:
            if not ws.transport.is_closing():
                ws.transport.resume_reading()
        self._paused.clear()

    # -- websocket: closed klines --------------------------------------------------------

    def duplicate_closed(self, n: int) -> None:
        """Send each of the next ``n`` closed klines twice (an exchange repeating itself)."""
        self._duplicates_left += max(0, n)

    def reorder_next_bar(self) -> None:
        """Send the next bar's closed klines in reverse symbol order, then the previous bar's again (stale)."""
        self._reorder_next = True

    def skip_closed(self, symbol: str, count: int) -> None:
        """Withhold the next ``count`` closed klines of ``symbol`` from the websocket; REST still serves them."""
        self._skips[symbol.replace("/", "").upper()] += max(0, count)

    def falsify_closed(self, symbol: str, change: Callable[[dict[str, Any]], None], then_true: bool = False) -> None:
        """Send the next closed kline of ``symbol`` with its ``k`` fields changed in place by ``change``
        (e.g. ``lambda k: k.update(h="99999999999999", c="99999999999999")``); with ``then_true`` the
        recorded kline follows it: two different closed klines for one bar, the false one first."""
        self._falsify[symbol.replace("/", "").upper()] = (change, then_true)

    def _falsified(self, ev: _Event, change: Callable[[dict[str, Any]], None]) -> _Event:
        data = json.loads(ev.data)
        change(data["k"])
        self.closed_falsified += 1
        return replace(ev, data=json.dumps(data, separators=(",", ":")))

    # -- websocket: extra frames ---------------------------------------------------------

    async def send_server_shutdown(self, close_after_s: float = 0.5) -> int:
        """Send ``{"e":"serverShutdown","E":<ms>}`` to every client, then close them ``close_after_s`` later.

        Binance announces a server going down this way before it disconnects; a
        client should reconnect at once.  Returns the number of clients told.
        """
        frame = json.dumps({"e": "serverShutdown", "E": self._clock()}, separators=(",", ":"))
        told = await self._connections.send_to_all(frame)
        self.shutdowns_sent += told
        conns = list(self._connections.clients)
        self._spawn(self._close_later(conns, close_after_s, CloseCode.GOING_AWAY, "server shutdown"))
        return told

    async def inject_frame(self, raw: str | bytes) -> int:
        """Send ``raw`` as one frame (text for ``str``, binary for ``bytes``) to every client; return how many."""
        told = await self._connections.send_to_all(raw)
        self.frames_injected += told
        return told

    async def _close_later(self, conns: list[ServerConnection], delay_s: float, code: int, reason: str) -> None:
        await asyncio.sleep(delay_s)
        await asyncio.gather(*(ws.close(code, reason) for ws in conns))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- REST ----------------------------------------------------------------------------

    def fail_next_rest(self, kind: str, n: int = 1, retry_after: int | None = None, delay_s: float = 5.0) -> None:
        """Answer the next ``n`` REST requests (any endpoint) with Binance's answer for ``kind``.

        ``"429"`` / ``"418"``: rate limited / IP banned, code -1003 with a ``Retry-After``
        header (``retry_after`` seconds; default 1 and 120).  ``"503"``: a plain-text
        "Service Unavailable".  ``"500"``: code -1000, unknown error.  ``"timeout"``: no
        answer for ``delay_s`` seconds (set it past the client's timeout), then 504.
        ``"bad_symbol"``: 400, code -1121 "Invalid symbol.".  ``"garbage_json"``: 200 with a
        JSON content type and a body that is not JSON.
        """
        if kind not in REST_FAULTS:
            raise ValueError(f"unknown REST fault {kind!r}; allowed: {', '.join(REST_FAULTS)}")
        self._rest_faults.extend(_RestFault(kind, retry_after, delay_s) for _ in range(max(0, n)))

    def rest_hostile(self, rows_transform: Callable[[list[list[Any]]], Any], n: int = 1) -> None:
        """Let ``rows_transform`` replace the kline rows of the next ``n`` successful ``/klines`` answers.

        It gets the rows Binance would send and returns the body: anything JSON can
        write (NaN and infinities included, other objects as their ``repr``) or raw ``bytes``.
        """
        self._rest_transforms.extend([rows_transform] * max(0, n))

    @property
    def rest_faults_pending(self) -> int:
        """REST faults and hostile transforms armed but not yet served."""
        return len(self._rest_faults) + len(self._rest_transforms)

    async def _delayed(self, fault: _RestFault) -> Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), fault.delay_s)
        return fault_response(fault, self._clock())

    # -- hooks the exchange calls while it serves ----------------------------------------

    def on_connect(self, ws: ServerConnection) -> None:
        """A new connection during a silence is silent too."""
        if self._silent():
            self._pause(ws)

    def on_disconnect(self, ws: ServerConnection) -> None:
        """Stop tracking a connection that has gone."""
        self._paused.discard(ws)

    def withheld(self, events: list[_Event]) -> bool:
        """While silent, count ``events`` as withheld and say so; otherwise ``False``."""
        if not self._silent():
            return False
        self.frames_withheld += len(events)
        return True

    def closed_klines(self, events: list[_Event]) -> list[_Event]:
        """A bar's closed klines as the armed faults send them: falsified, skipped, doubled, reordered."""
        out: list[_Event] = []
        for ev in events:
            market_id = ev.stream.split("@", 1)[0].upper()
            if market_id in self._falsify:
                change, then_true = self._falsify.pop(market_id)
                out.append(self._falsified(ev, change))
                if not then_true:
                    continue
            if self._skips[market_id] > 0:
                self._skips[market_id] -= 1
                self.closed_skipped += 1
                continue
            out.append(ev)
            if self._duplicates_left > 0:
                self._duplicates_left -= 1
                out.append(ev)
        if self._reorder_next:
            self._reorder_next = False
            out = out[::-1] + self._previous_closed
        self._previous_closed = events
        return out

    def rest_answer(self, path: str) -> Response | Awaitable[Response] | None:
        """The armed fault's answer to the REST request for ``path``, or ``None`` when none is armed."""
        if not self._rest_faults:
            return None
        fault = self._rest_faults.popleft()
        self.rest_faults_served[fault.kind] += 1
        log.info("REST %s -> injected fault %s", path, fault.kind)
        return self._delayed(fault) if fault.kind == "timeout" else fault_response(fault, self._clock())

    def hostile_klines(self, rows: object) -> object:
        """``rows`` as the next armed hostile transform rewrites them (unchanged when none is armed)."""
        if not self._rest_transforms:
            return rows
        return self._rest_transforms.popleft()(rows)  # type: ignore[arg-type]
