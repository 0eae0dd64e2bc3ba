"""Sigma-bot: an event-driven, uncertainty-aware paper-trading bot for crypto markets.

Kept free of imports, so that importing one ``bot`` module (the CLI's parser, the CSV tools) loads only what
that module needs, not the I/O packages (websockets, ccxt, aiosqlite).  ``risk/`` and ``strategies/`` never
import ``bot`` (the import-linter contracts in ``pyproject.toml``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sigma-bot")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"
