"""End to end with a trained network: `bot train`'s checkpoint served by the daemon over the replay exchange.

Every forecast the daemon logged must equal the checkpoint's forecast recomputed
offline from the same bars, so the model the engine trades with is the model
that was trained and evaluated, bar for bar.
"""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np

from bot.config import Settings
from bot.feeds.replay.csvdata import Series
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.runs.daemon import run_daemon
from strategies.checkpoint import load_checkpoint, save_checkpoint
from strategies.dataset import FeatureStore, MarketSeries
from strategies.predictor import TorchPredictor
from strategies.workflow import data_range, fit_range

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
HISTORY = 700          # bars the model trains on, then served over REST as warm-up history
BARS = 40              # bars the daemon decides
WINDOW = 64


def as_market(sym: str, s: Series) -> MarketSeries:
    cols = [np.asarray(c, dtype=np.float64) for c in (s.open, s.high, s.low, s.close, s.volume)]
    return MarketSeries(sym, s.open_ms, np.stack(cols, axis=1))


def test_daemon_trades_with_the_trained_checkpoint(tmp_path):
    data = generate_market(SYMBOLS, HISTORY + BARS + 1, 1_704_067_200_000, seed=5)
    market = [as_market(s, data[s]) for s in SYMBOLS]
    model = Settings().with_overrides(model={
        "name": "cnn_gru", "device": "cpu",
        "cnn_gru": {"lookback": 24, "conv_channels": 4, "gru_hidden": 8, "gru_layers": 2},
        "train": {"epochs": 2, "max_steps_per_epoch": 5, "batch_size": 32}}).model
    end = int(data[SYMBOLS[0]].open_ms[HISTORY])
    store = FeatureStore(market)
    fitted = fit_range(store, "cnn_gru", model, store.first_ms(), end)
    ckpt_path = tmp_path / "cnn_gru.pt"
    save_checkpoint(ckpt_path, fitted.forecaster, scaler=fitted.scaler, symbols=tuple(SYMBOLS), timeframe="1h",
                    data_range=data_range(market, store.first_ms(), end), summary=fitted.summary,
                    settings_json="{}")

    db = tmp_path / "trades.sqlite"

    async def run() -> None:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=HISTORY) as ex:
            settings = Settings().with_overrides(
                run={"db": str(db), "id": "model"},
                market={"symbols": SYMBOLS, "window": WINDOW},
                feed={"ws_url": ex.ws_url, "rest_url": ex.rest_url, "assembly_timeout_s": 5.0},
                model={"name": "cnn_gru", "checkpoint": str(ckpt_path), "device": "cpu",
                       "cnn_gru": {"lookback": 24, "conv_channels": 4, "gru_hidden": 8, "gru_layers": 2}})
            result = await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=BARS), timeout=120)
        assert result.stats.bars == BARS

    asyncio.run(run())
    with sqlite3.connect(db) as conn:
        # The model's own outputs (mu_raw, sigma_raw): the decisions use them scaled by skill and calibrated.
        logged = conn.execute("SELECT bar_ms, symbol, model, mu_raw, sigma_raw FROM forecasts WHERE run_id='model' "
                              "ORDER BY bar_ms, symbol").fetchall()
    assert len(logged) == BARS * len(SYMBOLS)
    assert {row[2] for row in logged} == {"cnn_gru"}
    pred = TorchPredictor(load_checkpoint(ckpt_path), "cpu")
    by_sym = {m.symbol: m for m in market}
    for bar_ms, sym, _, mu, sigma in logged:
        m = by_sym[sym]
        i = int(np.searchsorted(m.open_ms, bar_ms))
        assert m.open_ms[i] == bar_ms
        f = pred.predict(bar_ms, (sym,), m.ohlcv[i + 1 - WINDOW:i + 1][None])[0]
        assert abs(f.mu - mu) <= 1e-9 * max(1.0, abs(mu)) and abs(f.sigma - sigma) <= 1e-9 * sigma
