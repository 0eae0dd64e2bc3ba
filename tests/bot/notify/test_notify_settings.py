"""The [notify] section: validated like every section, no secrets in it, and neutral to a run's identity."""

from __future__ import annotations

import pytest

from bot.config import Settings, config_changes, parse_settings
from bot.errors import ConfigError


@pytest.mark.parametrize(("line", "message"), [
    ('webhook_url = "https://user:pw@hooks.example.net/x"', "'notify.webhook_url': the URL holds credentials"),
    ('webhook_url = "ftp://hooks.example.net/x"', "'notify.webhook_url': must be empty or start with http"),
    ('telegram_api_url = "https://a:b@api.telegram.org"', "'notify.telegram_api_url': the URL holds credentials"),
    ('events = ["fills", "trades"]', "'notify.events[1]': 'trades' is not allowed"),
    ('events = ["fills", "fills"]', "'notify.events': an event is listed twice"),
    ('telegram_token = "123:abc"', "'notify.telegram_token' looks like a credential"),
    ('queue_size = 0', "'notify.queue_size': 0 is out of range"),
])
def test_refused(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as e:
        parse_settings(f"[notify]\n{line}\n")
    assert "user:pw" not in str(e.value) and "123:abc" not in str(e.value)


def test_notify_changes_nothing_a_run_decides() -> None:
    with_notify = Settings().with_overrides(notify={"webhook_url": "http://127.0.0.1:9/h", "events": ["daily"]})
    assert with_notify.config_hash == Settings().config_hash
    assert config_changes(Settings().to_json(), with_notify.to_json()) == []
