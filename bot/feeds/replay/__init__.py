"""The embedded replay exchange: OHLCV files or a synthetic market, served as Binance streams and REST.

    csvdata    OHLCV CSV ⇄ Series (exact decimal strings, validated)
    synthetic  a seeded GARCH / Student-t market with daily seasonality and a common factor
    server     ReplayExchange: combined kline websocket streams + /api/v3 REST on one local port
"""

from bot.feeds.replay.csvdata import (
    Series,
    load_ohlcv_csv,
    symbol_from_filename,
    timeframe_from_filename,
    write_ohlcv_csv,
)
from bot.feeds.replay.synthetic import MarketModel, generate_market


def __getattr__(name: str) -> object:
    # The server needs `websockets`; loaded on first use, so the CSV tools work where it is not installed.
    if name == "ReplayExchange":
        from bot.feeds.replay.server import ReplayExchange

        return ReplayExchange
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "MarketModel", "ReplayExchange", "Series", "generate_market", "load_ohlcv_csv", "symbol_from_filename",
    "timeframe_from_filename", "write_ohlcv_csv",
]
