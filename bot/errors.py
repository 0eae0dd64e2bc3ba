"""The bot's exception tree, grouped by what the operator must do.

    BotError
    ├── ConfigError        fix config.toml or the command line, then start again (fatal)
    ├── DataError          a data file or database is unusable; fix or replace it (fatal)
    ├── FeedError          market data could not be had; retried with backoff
    └── ExecutionError     an order could not be placed or accounted; the order is refused

A malformed market-data *message* is not an exception: the parser returns a
rejection with its reason, which the feed logs and counts before moving on.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """A configuration key is unknown, mistyped or out of range. Start-up stops."""


class DataError(BotError):
    """A CSV file or the database cannot be used as it is."""


class FeedError(BotError):
    """The market-data connection failed; the caller may retry."""


class ExecutionError(BotError):
    """An order cannot be placed or accounted."""
