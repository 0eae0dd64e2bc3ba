"""``bot run`` checks its symbols against the exchange's markets before it opens the trade log: a symbol the
exchange does not trade stops start-up with the key's name instead of warning at every bar."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.runs.daemon import run_daemon

WINDOW = 48


@pytest.mark.asyncio
async def test_a_symbol_the_exchange_does_not_list_stops_start_up(tmp_path: Path) -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], WINDOW + 20, 1_704_067_200_000, seed=3)
    db = tmp_path / "t.sqlite"
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.05, start_index=WINDOW) as exchange:
        settings = Settings().with_overrides(
            run={"db": str(db), "id": "foo"}, market={"symbols": ["BTC/USDT", "FOO/USDT"], "window": WINDOW},
            feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "rest_max_attempts": 1})
        with pytest.raises(ConfigError, match=r"'market\.symbols': .* does not trade FOO/USDT \(not listed\)"):
            await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=3), 60)
        assert "/api/v3/exchangeInfo" in exchange.rest_requests
        assert not any(p.startswith("/api/v3/klines") for p in exchange.rest_requests)
    assert not db.exists()   # refused before the trade log was touched
