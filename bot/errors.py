"""The bot's exception tree, grouped by what the operator must do.

    BotError
    ├── ConfigError        fix config.toml or the command line, then start again (fatal)
    ├── DataError          a data file or database is unusable; fix or replace it (fatal)
    ├── FeedError          market data could not be had; retried with backoff
    └── ExecutionError     an order could not be placed or accounted; the order is refused

A malformed market-data *message* is not an exception: the parser returns a
rejection with its reason, which the feed logs and counts before moving on.

Each class lives in the lowest package that raises it (``BotError`` and ``ConfigError`` in
:mod:`strategies.errors`, ``ExecutionError`` in :mod:`risk.errors`, the rest here), so that
``strategies`` and ``risk`` never import ``bot``; import them all from here.
"""

from __future__ import annotations

from risk.errors import ExecutionError
from strategies.errors import BotError, ConfigError


class DataError(BotError):
    """A CSV file or the database cannot be used as it is."""


class FeedError(BotError):
    """The market-data connection failed; the caller may retry."""


__all__ = ["BotError", "ConfigError", "DataError", "FeedError", "ExecutionError"]
