"""The ``[notify]`` section of ``config.toml``: where notifications go and how hard delivery tries.

The Telegram bot token is a secret: it comes only from ``BOT_TELEGRAM_TOKEN`` in the
environment (:data:`ENV_TELEGRAM_TOKEN`), never from the config, and is never logged
or stored.  The webhook URL is stored with the run like every key, so it must carry
no credentials (``user:password@``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ConfigError
from strategies.configkeys import _key

ENV_TELEGRAM_TOKEN = "BOT_TELEGRAM_TOKEN"
EVENTS = ("fills", "state", "outage", "alarm", "daily")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Notifications of fills, trading-state changes, feed outages, skill alarms and a daily summary."""

    webhook_url: str = _key("POST each notification as JSON to this http(s) URL (no user:password@ in it); "
                            "empty: no webhook", default="")
    telegram_chat_id: str = _key("send each notification to this Telegram chat (the bot token comes from "
                                 f"{ENV_TELEGRAM_TOKEN} in the environment); empty: no Telegram", default="")
    telegram_api_url: str = _key("base URL of Telegram's Bot API (a local server in tests)",
                                 default="https://api.telegram.org")
    events: tuple[str, ...] = _key(f"what to notify, any of {', '.join(EVENTS)}", default=EVENTS)
    queue_size: int = _key("notifications waiting per channel; when full the oldest is dropped (counted "
                           "and logged), the engine never waits", default=1000, lo=1, hi=1_000_000)
    max_attempts: int = _key("tries per notification on a network error, timeout, HTTP 429 or 5xx", default=5,
                             lo=1, hi=100)
    retry_max_s: float = _key("longest pause between tries (exponential from 0.5 s, full jitter; a longer "
                              "Retry-After is honoured up to 300 s)", default=30.0, lo=0.0, hi=600.0)
    timeout_s: float = _key("timeout of one HTTP request", default=10.0, lo=0.1, hi=120.0)
    flush_timeout_s: float = _key("on shutdown, wait this long for queued notifications to go out",
                                  default=10.0, lo=0.0, hi=600.0)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels configured: ``webhook`` and/or ``telegram``."""
        return tuple(name for name, on in (("webhook", self.webhook_url), ("telegram", self.telegram_chat_id)) if on)


def check_notify_settings(s: NotifySettings, prefix: str) -> None:
    """ConfigError for a URL that is not http(s) and an unknown event (the credential check is the config's)."""
    for name in ("webhook_url", "telegram_api_url"):
        url = getattr(s, name)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"config key '{prefix}{name}': must be empty or start with http:// or https://")
    for i, event in enumerate(s.events):
        if event not in EVENTS:
            raise ConfigError(f"config key '{prefix}events[{i}]': {event!r} is not allowed; allowed values: "
                              f"{', '.join(EVENTS)}")
    if len(set(s.events)) != len(s.events):
        raise ConfigError(f"config key '{prefix}events': an event is listed twice: {list(s.events)}")


__all__ = ["NotifySettings", "check_notify_settings", "ENV_TELEGRAM_TOKEN", "EVENTS"]
