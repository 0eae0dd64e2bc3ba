"""Historical market data: ``bot download`` fetches closed klines into the OHLCV CSV files the replay and
the backtest read.

    download   the command's engine: pages from the exchange through ccxt, checked, journalled, merged
    pages      the pure page rules: which bars a page must hold, gaps, time parsing and formatting
    files      the CSV file and its journal: appended durably, merged atomically
"""
