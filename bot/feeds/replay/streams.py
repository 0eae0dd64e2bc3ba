"""What the replay exchange's websocket side sends to whom: a connected client's streams, and one frame.

Shared by the server (:mod:`bot.feeds.replay.server`), which streams the frames, and the faults
(:mod:`bot.feeds.replay.faults`), which withhold, repeat, reorder or falsify them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
