"""Exchange credentials (from the environment only) and the guard in front of live trading.

API keys are read from ``BOT_API_KEY``, ``BOT_API_SECRET`` and, for exchanges
that want one, ``BOT_API_PASSWORD`` — never from ``config.toml``, never from the
command line, and never written to the trade log or the text log.
:class:`Credentials` hides its values from ``repr`` and ``str``; hand
:meth:`Credentials.values` to :func:`bot.cli.logs.setup_logging` so that a value
that slips into a log line is masked all the same.

Real orders need two deliberate acts: ``mode = "live"`` under ``[run]`` in the
config *and* ``--live`` on the command line (:func:`check_live_guard`), plus
credentials in the environment.  :func:`require_live` is the one guard where an
exchange executor is built (:func:`bot.execution.live.open_exchange_executor`):
no command reaches a signed client without all three.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ConfigError

ENV_API_KEY = "BOT_API_KEY"
ENV_API_SECRET = "BOT_API_SECRET"
ENV_API_PASSWORD = "BOT_API_PASSWORD"
ENV_HINT = f"API keys come only from environment variables {ENV_API_KEY}/{ENV_API_SECRET} " \
           f"(and {ENV_API_PASSWORD} where the exchange needs one)"

# Config key names that look like credentials: api_key, apiKey, api-secret, secret, password, passphrase, token...
_SECRET_KEY_RE = re.compile(r"(api[_-]?key|apikey|secret|passw(or)?d|passphrase|token|private[_-]?key)",
                            re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Exchange API credentials; ``repr`` and ``str`` never show the values."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        password = "None" if self.password is None else "***"
        return f"Credentials(api_key=***, api_secret=***, password={password})"

    __str__ = __repr__

    def values(self) -> tuple[str, ...]:
        """The secret strings, for the log redaction filter."""
        return tuple(v for v in (self.api_key, self.api_secret, self.password) if v)


def load_credentials(env: Mapping[str, str] = os.environ) -> Credentials | None:
    """Credentials from ``BOT_API_KEY``/``BOT_API_SECRET``/``BOT_API_PASSWORD``; None when none is set.

    An empty variable counts as unset.  One of key and secret without the other is a ConfigError.
    """
    key = env.get(ENV_API_KEY, "").strip()
    secret = env.get(ENV_API_SECRET, "").strip()
    password = env.get(ENV_API_PASSWORD, "").strip() or None
    if not key and not secret:
        if password:
            raise ConfigError(f"{ENV_API_PASSWORD} is set but {ENV_API_KEY} and {ENV_API_SECRET} are not")
        return None
    if not key or not secret:
        have, missing = (ENV_API_KEY, ENV_API_SECRET) if key else (ENV_API_SECRET, ENV_API_KEY)
        raise ConfigError(f"{have} is set but {missing} is not; set both (or neither, for paper trading)")
    return Credentials(key, secret, password)


def secret_config_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the keys in parsed TOML ``data`` that look like credentials."""
    found: list[str] = []
    for name, value in data.items():
        key = prefix + str(name)
        if _SECRET_KEY_RE.search(str(name)):
            found.append(key)
        for sub_prefix, sub in _tables(value, key):
            found.extend(secret_config_keys(sub, sub_prefix))
    return found


def _tables(value: Any, key: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(value, Mapping):
        yield key + ".", value
    elif isinstance(value, list):   # arrays of tables
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield f"{key}[{i}].", item


def check_config_has_no_secrets(toml_text: str) -> None:
    """Raise ConfigError if the config holds a key named like a credential; its value is never echoed.

    Text that is not valid TOML passes: the config loader reports the parse error.
    """
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError:
        return
    check_config_data_has_no_secrets(data)


def check_config_data_has_no_secrets(data: Mapping[str, Any]) -> None:
    """Raise ConfigError if parsed config ``data`` holds a key named like a credential."""
    keys = secret_config_keys(data)
    if keys:
        raise ConfigError(f"config key '{keys[0]}' looks like a credential and is not allowed in the config "
                          f"file: {ENV_HINT}; remove it from the file")


def check_live_guard(mode: str, live_flag: bool, credentials: Credentials | None) -> None:
    """Raise ConfigError unless the combination of ``run.mode``, ``--live`` and credentials may start.

    Paper trading (mode paper, no flag) always may.  Real orders need ``run.mode = "live"`` and
    ``--live`` together, and credentials in the environment.
    """
    if mode != "live" and not live_flag:
        return
    if not live_flag:
        raise ConfigError("run.mode is 'live' but --live was not given: real orders need both "
                          "run.mode = \"live\" in the config and --live on the command line")
    if mode != "live":
        raise ConfigError(f"--live given but run.mode is {mode!r}: real orders need both run.mode = \"live\" "
                          "in the config and --live on the command line")
    if credentials is None:
        raise ConfigError(f"run.mode is 'live' and --live was given, but no credentials are set: {ENV_HINT}")


def require_live(mode: str, live_flag: bool, credentials: Credentials | None) -> Credentials:
    """The credentials to sign orders with; ConfigError unless ``run.mode = "live"``, ``--live`` and
    credentials all hold.  The guard in front of every exchange executor."""
    check_live_guard(mode, live_flag, credentials)
    if mode != "live" or not live_flag or credentials is None:   # paper without --live passes the check above
        raise ConfigError(f"refusing to build an exchange executor: run.mode is {mode!r}"
                          f"{'' if live_flag else ', --live was not given'}"
                          f"{'' if credentials is not None else ', no credentials are set'}; real orders need "
                          "run.mode = \"live\" in the config, --live on the command line and "
                          f"{ENV_API_KEY}/{ENV_API_SECRET} in the environment")
    return credentials


__all__ = [
    "require_live", "Credentials", "load_credentials", "check_config_has_no_secrets",
    "check_config_data_has_no_secrets",
    "secret_config_keys", "check_live_guard", "ENV_API_KEY", "ENV_API_SECRET", "ENV_API_PASSWORD",
]
