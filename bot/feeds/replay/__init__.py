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
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import MarketModel, generate_market

__all__ = [
    "MarketModel", "ReplayExchange", "Series", "generate_market", "load_ohlcv_csv", "symbol_from_filename",
    "timeframe_from_filename", "write_ohlcv_csv",
]
