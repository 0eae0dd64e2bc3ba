"""Deliver notifications in the background: one bounded queue and one worker task per channel.

    engine ──► BarWatcher ──► Notifier.post ──► [queue] ──► worker ──► httpx POST ──► webhook / Telegram

:meth:`Notifier.post` never waits: it appends to each channel's queue and returns; when a queue is
full the oldest notification is dropped, counted and logged.  Each worker sends its queue in order,
retrying a transient failure (:mod:`bot.notify.channels` says which) with exponential backoff and
full jitter (:class:`bot.feeds.retry.RetryPolicy`, the feed's policy), at least as long as a
``Retry-After`` asks.  A dead endpoint therefore costs its own worker time, never the engine's,
and one channel's outage does not delay another.  On shutdown the queues get ``flush_timeout_s``
to drain; what is left is counted in the log.

httpx is the HTTP client: an asyncio client with per-request timeouts and connection reuse, the
test-suite's client already, and it keeps its logger's request lines (which would show Telegram's
token, part of the URL) below WARNING where we put them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

import httpx

from bot.config.notify import ENV_TELEGRAM_TOKEN, NotifySettings
from bot.errors import ConfigError
from bot.feeds.retry import RetryPolicy
from bot.notify.channels import (
    Channel,
    DeliveryError,
    TelegramChannel,
    WebhookChannel,
    check_answer,
)
from bot.notify.messages import BarWatcher, Notification
from strategies.events import Forecast

log = logging.getLogger(__name__)

# httpx logs each request's URL at INFO, and Telegram's URL holds the bot token: keep both loggers quiet.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def telegram_token(env: Mapping[str, str] = os.environ) -> str | None:
    """The Telegram bot token from ``BOT_TELEGRAM_TOKEN`` (None when unset or empty)."""
    return env.get(ENV_TELEGRAM_TOKEN, "").strip() or None


def notify_secrets(s: NotifySettings, env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The secrets the log must mask: the Telegram token when a chat is configured."""
    token = telegram_token(env) if s.telegram_chat_id else None
    return (token,) if token else ()


def build_channels(s: NotifySettings, env: Mapping[str, str] = os.environ) -> list[Channel]:
    """The configured channels; ConfigError for a Telegram chat without ``BOT_TELEGRAM_TOKEN``."""
    channels: list[Channel] = []
    if s.webhook_url:
        channels.append(WebhookChannel(s.webhook_url))
    if s.telegram_chat_id:
        token = telegram_token(env)
        if token is None:
            raise ConfigError(f"config key 'notify.telegram_chat_id' is set but {ENV_TELEGRAM_TOKEN} is not: the "
                              "Telegram bot token comes only from the environment")
        channels.append(TelegramChannel(s.telegram_api_url, token, s.telegram_chat_id))
    return channels


class Lane:
    """One channel's queue and the worker that empties it."""

    def __init__(self, channel: Channel, client: httpx.AsyncClient, queue_size: int, policy: RetryPolicy,
                 sleep: Callable[[float], Awaitable[object]], rng: random.Random | None) -> None:
        self.channel = channel
        self.client = client
        self.queue: deque[Notification] = deque(maxlen=queue_size)
        self.policy = policy
        self.sleep = sleep
        self.rng = rng
        self.sent = self.failed = self.dropped = 0
        self.in_flight: Notification | None = None
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, note: Notification) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
            oldest = self.queue[0]
            log.warning("%s notification queue full (%d): oldest (%s, bar %s) dropped; %d dropped so far",
                        self.channel.name, self.queue.maxlen, oldest.kind, oldest.bar_ms, self.dropped)
        self.queue.append(note)
        self._idle.clear()
        self._ready.set()

    async def idle(self) -> None:
        """Return once the queue is empty and nothing is being sent."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            while not self.queue:
                self._idle.set()
                self._ready.clear()
                await self._ready.wait()
            note = self.in_flight = self.queue.popleft()
            try:
                await self.deliver(note)
            except Exception as exc:  # noqa: BLE001 (a bug must not end the worker: later notifications still go out)
                self.failed += 1
                log.error("%s notification (%s) failed: %s", self.channel.name, note.kind,
                          self.channel.redact(f"{type(exc).__name__}: {exc}"))
            self.in_flight = None   # (not when cancelled: it counts as not sent)

    async def deliver(self, note: Notification) -> None:
        """Send one notification, retrying per the policy; count it sent or failed."""
        name = self.channel.name
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                url, body = self.channel.request(note)
                answer = await self.client.post(url, json=body)
                check_answer(answer.status_code, answer.headers, answer.content)
                self.sent += 1
                return
            except httpx.HTTPError as exc:   # no answer: refused, reset, timed out
                error = DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": "), True)
            except DeliveryError as exc:
                error = exc
            why = self.channel.redact(str(error))
            wait = error.retry_after_s
            too_long = wait is not None and wait > self.policy.max_retry_after_s
            if not error.retryable or attempt >= self.policy.max_attempts or too_long:
                self.failed += 1
                log.warning("%s notification (%s) not delivered after %d attempt(s): %s%s", name, note.kind,
                            attempt, why, f" (asked to wait {wait:g} s)" if too_long else "")
                return
            delay = self.policy.backoff_s(attempt, self.rng)
            if wait is not None:
                delay = max(delay, wait)
            log.info("%s notification (%s) attempt %d/%d failed: %s; retrying in %.2f s", name, note.kind, attempt,
                     self.policy.max_attempts, why, delay)
            await self.sleep(delay)

    @property
    def left(self) -> int:
        return len(self.queue) + (self.in_flight is not None)


class Notifier:
    """Background delivery to every configured channel (an async context manager: started and flushed)."""

    def __init__(self, channels: Sequence[Channel], settings: NotifySettings, run_id: str,
                 client: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        # No channel, no client (most runs): nothing is opened.
        self.client = client or (httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False)
                                 if channels else None)
        policy = RetryPolicy(max_attempts=settings.max_attempts, max_delay_s=settings.retry_max_s)
        self.lanes = [Lane(c, self.client, settings.queue_size, policy, sleep, rng)
                      for c in channels if self.client is not None]
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(cls, settings: NotifySettings, run_id: str, env: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier ``[notify]`` asks for (no channel: posting does nothing); ConfigError as
        :func:`build_channels` says."""
        return cls(build_channels(settings, env), settings, run_id)

    def post(self, note: Notification) -> None:
        """Queue ``note`` for every channel; never waits."""
        for lane in self.lanes:
            lane.put(note)

    def watcher(self, state: str = "ACTIVE", alarms: Iterable[Forecast] = ()) -> BarWatcher:
        """A :class:`BarWatcher` for the engine that posts here (``state`` and ``alarms``: where the run resumes)."""
        return BarWatcher(self.run_id, self.post, self.settings.events, state, alarms)

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(lane.run(), name=f"notify-{lane.channel.name}") for lane in self.lanes]
        if self.lanes:
            log.info("notifications (%s) to %s", ", ".join(self.settings.events),
                     ", ".join(lane.channel.name for lane in self.lanes))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose(self.settings.flush_timeout_s)

    async def aclose(self, flush_timeout_s: float) -> None:
        """Give the queues ``flush_timeout_s`` to drain, then stop the workers and close the client."""
        try:
            if self.lanes:
                await asyncio.wait_for(asyncio.gather(*(lane.idle() for lane in self.lanes)), flush_timeout_s)
        except TimeoutError:
            pass
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
            if self.client is not None:
                await self.client.aclose()
        for lane in self.lanes:
            if lane.left:
                log.warning("%s: %d notification(s) not sent at shutdown (notify.flush_timeout_s = %g)",
                            lane.channel.name, lane.left, flush_timeout_s)
            log.info("%s notifications: %d sent, %d failed, %d dropped", lane.channel.name, lane.sent, lane.failed,
                     lane.dropped)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per channel: sent, failed, dropped and left (queued or in flight)."""
        return {lane.channel.name: {"sent": lane.sent, "failed": lane.failed, "dropped": lane.dropped,
                                    "left": lane.left} for lane in self.lanes}


__all__ = ["Notifier", "Lane", "build_channels", "notify_secrets", "telegram_token"]
