"""Where a notification goes, as an HTTP request to build and an answer to judge: no I/O here.

Each channel turns a :class:`~bot.notify.messages.Notification` into one POST (URL and JSON
body) and reads the answer: delivered, worth another try (:class:`DeliveryError` with
``retryable``), or refused for good.  :mod:`bot.notify.delivery` does the sending.

What is retried: no answer (connection refused or reset, timeout), HTTP 408, 429 and 5xx.
A 429 may say how long to wait: the ``Retry-After`` header (RFC 9110 §10.2.3), or Telegram's
``parameters.retry_after`` in the JSON body (https://core.telegram.org/bots/api#responseparameters).
Any other answer (a wrong chat id, a revoked token: HTTP 400, 401, 403, 404) is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from bot.notify.messages import Notification

# Telegram refuses longer messages (https://core.telegram.org/bots/api#sendmessage: 1-4096 characters).
TELEGRAM_MAX_CHARS = 4096


class DeliveryError(Exception):
    """A notification not delivered this time; ``retry_after_s`` is the wait the receiver asked for."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    name: str

    def request(self, note: Notification) -> tuple[str, dict[str, Any]]:
        """The URL to POST to and the JSON body."""
        ...

    def redact(self, text: str) -> str:
        """``text`` with any secret of the channel masked (for log lines about failures)."""
        ...


def check_answer(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Nothing for a 2xx answer; :class:`DeliveryError` otherwise, retryable for 408, 429 and 5xx."""
    if 200 <= status < 300:
        return
    retryable = status in (408, 429) or status >= 500
    wait = _retry_after(headers, body) if status == 429 or status == 503 else None
    detail = _describe_body(body)
    raise DeliveryError(f"HTTP {status}{': ' + detail if detail else ''}", retryable, wait)


def _retry_after(headers: Mapping[str, str], body: bytes) -> float | None:
    value: Any = headers.get("retry-after")
    if value is None:
        try:
            value = json.loads(body).get("parameters", {}).get("retry_after")
        except (ValueError, AttributeError):
            value = None
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None   # an HTTP date or garbage: fall back to the backoff
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


def _describe_body(body: bytes) -> str:
    """Telegram's ``description`` or the first 200 characters of the body."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("description"), str):
            return data["description"][:200]
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace").strip()


class WebhookChannel:
    """POST the notification's JSON (:meth:`Notification.payload`) to one URL."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, note: Notification) -> tuple[str, dict[str, Any]]:
        return self.url, note.payload()

    def redact(self, text: str) -> str:
        return text


class TelegramChannel:
    """Telegram's Bot API ``sendMessage`` (https://core.telegram.org/bots/api#sendmessage) to one chat.

    The token is part of the request path (``/bot<token>/sendMessage``), so the URL is never
    logged: failures are described by :meth:`redact`-ed text only.
    """

    name = "telegram"

    def __init__(self, api_url: str, token: str, chat_id: str) -> None:
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._token = token
        self.chat_id = chat_id

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self.chat_id!r})"

    def request(self, note: Notification) -> tuple[str, dict[str, Any]]:
        text = note.text if len(note.text) <= TELEGRAM_MAX_CHARS else note.text[:TELEGRAM_MAX_CHARS - 1] + "…"
        return self._url, {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


__all__ = ["Channel", "DeliveryError", "WebhookChannel", "TelegramChannel", "check_answer"]
