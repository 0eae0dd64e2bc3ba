"""Sigma-bot: an event-driven, uncertainty-aware paper-trading bot for crypto markets.

Kept free of imports so that ``strategies/`` and ``risk/`` can use ``bot.events``
and ``bot.config`` without loading the I/O packages (websockets, ccxt, aiosqlite).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sigma-bot")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"
