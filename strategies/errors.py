"""The root of sigma-bot's exception tree and the one error a model raises: a configuration it cannot serve.

The whole tree is drawn in :mod:`bot.errors`; each class lives in the lowest package that raises it, so
``strategies`` and ``risk`` raise the very classes the operator's ``except`` clauses catch.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """A configuration key is unknown, mistyped or out of range. Start-up stops."""


__all__ = ["BotError", "ConfigError"]
