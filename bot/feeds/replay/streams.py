"""What the replay exchange's websocket side sends to whom: the connected clients, their streams, and sending.

:class:`Connections` owns the open websocket connections and the one lock that orders every send to
them.  The server (:mod:`bot.feeds.replay.server`) registers clients and broadcasts the kline frames;
the faults (:mod:`bot.feeds.replay.faults`) abort connections and send extra frames through the
same object, so neither needs the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("bot.replay")

SEND_TIMEOUT_S = 10.0  # a client that takes longer to accept one frame is aborted


@dataclass(slots=True, eq=False)
class _Client:
    combined: bool
    streams: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Event:
    """One frame for the clients of ``stream``; ``closed`` is (symbol, open_ms) for a closed kline."""

    stream: str
    data: str
    closed: tuple[str, int] | None = None


_Message = tuple[str | bytes, tuple[str, int] | None]  # a frame, and (symbol, open_ms) when it is a closed kline


class Connections:
    """The open websocket connections, what each subscribed to, and every send to them (under one lock)."""

    def __init__(self) -> None:
        self.clients: dict[ServerConnection, _Client] = {}
        self._send_lock = asyncio.Lock()
        # (symbol, open_ms) of each closed kline frame handed to a client's connection, oldest first.
        self.closed_sent: deque[tuple[str, int]] = deque(maxlen=100_000)

    def __len__(self) -> int:
        return len(self.clients)

    def add(self, ws: ServerConnection, client: _Client) -> None:
        self.clients[ws] = client

    def discard(self, ws: ServerConnection) -> None:
        self.clients.pop(ws, None)

    async def broadcast(self, events: list[_Event]) -> None:
        """Send each client the events of its streams, waiting for slow clients rather than dropping."""
        async with self._send_lock:
            sends = []
            for ws, client in list(self.clients.items()):
                msgs = [(f'{{"stream":"{ev.stream}","data":{ev.data}}}' if client.combined else ev.data, ev.closed)
                        for ev in events if ev.stream in client.streams]
                if msgs:
                    sends.append(self._send_all(ws, msgs))
            if sends:
                await asyncio.gather(*sends)

    async def send_to_all(self, raw: str | bytes) -> int:
        """Send ``raw`` as one frame to every client; return how many were sent it."""
        async with self._send_lock:
            conns = list(self.clients)
            await asyncio.gather(*(self._send_all(ws, [(raw, None)]) for ws in conns))
        return len(conns)

    async def abort_all(self) -> int:
        """Abort every connection (no close frame), after a broadcast in progress; return how many.

        Waiting for the broadcast keeps :attr:`closed_sent` true: every closed kline logged there was
        handed to the socket before the abort.  A broadcast stuck past :data:`SEND_TIMEOUT_S` does not
        hold the abort back.
        """
        locked = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SEND_TIMEOUT_S):
                locked = await self._send_lock.acquire()
        try:
            conns = list(self.clients)
            for ws in conns:
                ws.transport.abort()
                self.clients.pop(ws, None)
        finally:
            if locked:
                self._send_lock.release()
        return len(conns)

    async def _send_all(self, ws: ServerConnection, msgs: Sequence[_Message]) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                for msg, closed in msgs:
                    await ws.send(msg)
                    if closed is not None:
                        self.closed_sent.append(closed)
        except ConnectionClosed:
            self.clients.pop(ws, None)
        except TimeoutError:
            log.warning("client %s did not take a frame in %.0f s; aborting it", ws.remote_address,
                        SEND_TIMEOUT_S)
            self.clients.pop(ws, None)
            ws.transport.abort()
