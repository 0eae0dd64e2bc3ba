"""A URL with credentials in it (user:password@host) stops start-up: the config is stored with the run in the
trade log, and API keys come only from the environment.  The error names the key, never the secret."""

from __future__ import annotations

import pytest

from bot.config import Settings, parse_settings
from bot.errors import ConfigError

SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(("section", "key", "url"), [
    ("feed", "rest_url", f"http://bob:{SECRET}@127.0.0.1:8765/api/v3"),
    ("feed", "ws_url", f"wss://{SECRET}@stream.example.com/stream"),
    ("exchange", "rest_url", f"https://key:{SECRET}@testnet.example.com/api"),
])
def test_credentials_in_a_url_are_refused_without_echoing_them(section: str, key: str, url: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(f'[{section}]\n{key} = "{url}"\n')
    assert f"config key '{section}.{key}': the URL holds credentials" in str(err.value)
    assert SECRET not in str(err.value) and "bob" not in str(err.value)
    with pytest.raises(ConfigError, match="holds credentials"):   # overrides (bot demo, backtests) too
        Settings().with_overrides(**{section: {key: url}})


def test_a_bad_scheme_with_credentials_does_not_echo_them() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(f'[feed]\nrest_url = "ftp://bob:{SECRET}@host/api"\n')
    assert SECRET not in str(err.value)


def test_urls_without_credentials_pass() -> None:
    s = parse_settings('[feed]\nrest_url = "http://127.0.0.1:8765/api/v3"\nws_url = "ws://127.0.0.1:8765/stream"\n'
                       '[exchange]\nrest_url = "http://127.0.0.1:9000/api"\n')
    assert s.feed.rest_url == "http://127.0.0.1:8765/api/v3" and s.exchange.rest_url == "http://127.0.0.1:9000/api"
