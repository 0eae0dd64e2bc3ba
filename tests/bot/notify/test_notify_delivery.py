"""Background delivery over real HTTP to a local receiver: retries, backoff, drops, flush, the Telegram token."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time

import pytest

from bot.config.notify import NotifySettings
from bot.errors import ConfigError
from bot.notify.delivery import Notifier, build_channels, notify_secrets
from bot.notify.messages import Notification
from bot.notify.receiver import NotificationReceiver

TOKEN = "123456:TEST-telegram-token-do-not-log"


def note(i: int) -> Notification:
    return Notification("fills", "r", 1_704_067_200_000 + i, f"[r] note {i}", {"i": i})


def dead_url() -> str:
    """An address on loopback where nothing listens: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


class Sleeps:
    """The pauses asked for, taken as zero: the backoff is checked, not waited."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def notifier(settings: NotifySettings, sleep: Sleeps | None = None, env: dict[str, str] | None = None) -> Notifier:
    n = Notifier.from_settings(settings, "r", env or {})
    if sleep is not None:
        for lane in n.lanes:
            lane.sleep, lane.rng = sleep, random.Random(1)
    return n


@pytest.mark.asyncio
async def test_webhook_gets_each_notification_in_order() -> None:
    with NotificationReceiver() as r:
        async with notifier(NotifySettings(webhook_url=r.url + "/hook")) as n:
            for i in range(3):
                n.post(note(i))
        bodies = r.bodies("/hook")
    assert [b["data"]["i"] for b in bodies] == [0, 1, 2]
    assert bodies[0]["kind"] == "fills" and bodies[0]["time"] == "2024-01-01 00:00 UTC"
    assert n.counts() == {"webhook": {"sent": 3, "failed": 0, "dropped": 0, "left": 0}}


@pytest.mark.asyncio
async def test_failures_are_retried_with_exponential_backoff_and_jitter() -> None:
    sleeps = Sleeps()
    with NotificationReceiver(fail_first=3, fail_status=503) as r:
        async with notifier(NotifySettings(webhook_url=r.url + "/hook", max_attempts=5, retry_max_s=1.5),
                            sleeps) as n:
            n.post(note(0))
        calls = r.calls
    assert [c.status for c in calls] == [503, 503, 503, 200]
    assert n.counts()["webhook"]["sent"] == 1
    # Full jitter: pause n is uniform in [0, min(retry_max_s, 0.5 * 2^(n-1))].
    assert len(sleeps.delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(sleeps.delays, (0.5, 1.0, 1.5)))


@pytest.mark.asyncio
async def test_retry_after_is_honoured_and_attempts_are_bounded() -> None:
    sleeps = Sleeps()
    with NotificationReceiver(fail_first=10, fail_status=429, retry_after=4) as r:
        async with notifier(NotifySettings(webhook_url=r.url + "/hook", max_attempts=3), sleeps) as n:
            n.post(note(0))
        assert len(r.calls) == 3
    assert sleeps.delays == [4.0, 4.0]
    assert n.counts()["webhook"] == {"sent": 0, "failed": 1, "dropped": 0, "left": 0}


@pytest.mark.asyncio
async def test_a_refusal_is_not_retried() -> None:
    with NotificationReceiver(fail_first=1, fail_status=404) as r:
        async with notifier(NotifySettings(webhook_url=r.url + "/hook")) as n:
            n.post(note(0))
            n.post(note(1))
        assert [c.status for c in r.calls] == [404, 200]
    assert n.counts()["webhook"]["failed"] == 1 and n.counts()["webhook"]["sent"] == 1


@pytest.mark.asyncio
async def test_a_full_queue_drops_the_oldest_and_post_never_waits(caplog: pytest.LogCaptureFixture) -> None:
    with NotificationReceiver() as r:
        n = notifier(NotifySettings(webhook_url=r.url + "/hook", queue_size=3))
        started = time.perf_counter()
        for i in range(10):            # before the worker runs: the queue keeps the newest three
            n.post(note(i))
        assert time.perf_counter() - started < 0.5
        async with n:
            pass
        assert [b["data"]["i"] for b in r.bodies()] == [7, 8, 9]
    assert n.counts()["webhook"]["dropped"] == 7
    assert "queue full (3): oldest (fills, bar 1704067200006) dropped; 7 dropped so far" in caplog.text


@pytest.mark.asyncio
async def test_a_dead_endpoint_neither_blocks_posting_nor_holds_shutdown_past_the_flush_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    settings = NotifySettings(webhook_url=dead_url(), max_attempts=100, retry_max_s=0.05, flush_timeout_s=0.5)
    n = notifier(settings)
    async with n:
        started = time.perf_counter()
        for i in range(200):
            n.post(note(i))
            await asyncio.sleep(0)
        assert time.perf_counter() - started < 3.0
        closing = time.perf_counter()
    assert time.perf_counter() - closing < 3.0   # flush_timeout_s 0.5, then the workers are cancelled
    counts = n.counts()["webhook"]
    assert counts["sent"] == 0 and counts["left"] == 200
    assert "200 notification(s) not sent at shutdown" in caplog.text


@pytest.mark.asyncio
async def test_shutdown_flushes_what_is_queued() -> None:
    with NotificationReceiver() as r:
        n = notifier(NotifySettings(webhook_url=r.url + "/hook", flush_timeout_s=10))
        async with n:
            for i in range(50):
                n.post(note(i))
        assert len(r.calls) == 50


@pytest.mark.asyncio
async def test_telegram_send_message_with_the_token_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with NotificationReceiver(fail_first=1, fail_status=500) as r:
        settings = NotifySettings(telegram_chat_id="-1001", telegram_api_url=r.url, retry_max_s=0.01)
        async with notifier(settings, env={"BOT_TELEGRAM_TOKEN": TOKEN}) as n:
            n.post(note(0))
        calls = r.calls
    assert [c.path for c in calls] == [f"/bot{TOKEN}/sendMessage"] * 2
    assert calls[1].body == {"chat_id": "-1001", "text": "[r] note 0", "disable_web_page_preview": True}
    assert "telegram notification (fills) attempt 1/5 failed: HTTP 500" in caplog.text
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text
    assert notify_secrets(settings, {"BOT_TELEGRAM_TOKEN": TOKEN}) == (TOKEN,)


def test_a_telegram_chat_without_the_token_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="'notify.telegram_chat_id' is set but BOT_TELEGRAM_TOKEN is not"):
        build_channels(NotifySettings(telegram_chat_id="-1"), {})
    assert build_channels(NotifySettings(), {}) == []
