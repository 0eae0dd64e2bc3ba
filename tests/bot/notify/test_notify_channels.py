"""Channels: the request each builds and how an answer is judged (pure, no I/O)."""

from __future__ import annotations

import pytest

from bot.notify.channels import (
    TELEGRAM_MAX_CHARS,
    DeliveryError,
    TelegramChannel,
    WebhookChannel,
    check_answer,
)
from bot.notify.messages import Notification

NOTE = Notification("fills", "r", 1_704_067_200_000, "[r] hello", {"x": "1"})


def test_webhook_posts_the_payload() -> None:
    url, body = WebhookChannel("http://127.0.0.1:9/hook").request(NOTE)
    assert url == "http://127.0.0.1:9/hook"
    assert body == {"kind": "fills", "run": "r", "bar_ms": 1_704_067_200_000, "time": "2024-01-01 00:00 UTC",
                    "text": "[r] hello", "data": {"x": "1"}}


def test_telegram_send_message_and_the_token_kept_out_of_repr_and_errors() -> None:
    ch = TelegramChannel("http://127.0.0.1:9/", "123:SECRET", "-100")
    url, body = ch.request(NOTE)
    assert url == "http://127.0.0.1:9/bot123:SECRET/sendMessage"
    assert body["chat_id"] == "-100" and body["text"] == "[r] hello"
    assert "SECRET" not in repr(ch) and ch.redact("GET /bot123:SECRET/x") == "GET /bot***/x"
    long = Notification("fills", "r", None, "x" * 5000)
    assert len(ch.request(long)[1]["text"]) == TELEGRAM_MAX_CHARS


@pytest.mark.parametrize(("status", "headers", "body", "retryable", "wait"), [
    (503, {}, b"", True, None),
    (503, {"retry-after": "7"}, b"", True, 7.0),
    (429, {}, b'{"ok":false,"error_code":429,"parameters":{"retry_after":3}}', True, 3.0),
    (429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"", True, None),
    (408, {}, b"", True, None),
    (400, {}, b'{"ok":false,"description":"Bad Request: chat not found"}', False, None),
    (401, {}, b"", False, None),
])
def test_answers(status: int, headers: dict[str, str], body: bytes, retryable: bool, wait: float | None) -> None:
    with pytest.raises(DeliveryError) as e:
        check_answer(status, headers, body)
    assert e.value.retryable is retryable and e.value.retry_after_s == wait
    if status == 400:
        assert str(e.value) == "HTTP 400: Bad Request: chat not found"


def test_2xx_is_delivered() -> None:
    check_answer(200, {}, b"{}")
    check_answer(204, {}, b"")
