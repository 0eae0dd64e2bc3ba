"""The error an order's arithmetic raises: a quantity or step that cannot make an order (see :mod:`bot.errors`)."""

from __future__ import annotations

from strategies.errors import BotError


class ExecutionError(BotError):
    """An order cannot be placed or accounted."""


__all__ = ["ExecutionError"]
