"""Tiny trained checkpoints for the serving tests: small shapes, two short epochs, generated data."""

from __future__ import annotations

from pathlib import Path

from synthetic_market import HOUR_MS, T0_MS, ar1_market

from bot.config import Settings
from strategies.checkpoint import save_checkpoint
from strategies.dataset import FeatureStore, MarketSeries
from strategies.workflow import Fitted, data_range, fit_range

SYMBOLS = ("BTC/USDT", "ETH/USDT")
N = 900
TRAIN_BARS = 700


def tiny_settings(name: str = "cnn_gru", checkpoint: str = "") -> Settings:
    """These shapes check plumbing, not skill."""
    return Settings().with_overrides(
        market={"symbols": list(SYMBOLS), "window": 64},
        model={"name": name, "checkpoint": checkpoint, "device": "cpu",
               "cnn_gru": {"lookback": 24, "conv_channels": 4, "gru_hidden": 8, "gru_layers": 2},
               "lstm": {"lookback": 12, "hidden1": 8, "hidden2": 4},
               "multi_asset": {"lookback": 16, "expert_hidden": 4, "coordinator_hidden": 8},
               "knn": {"k": 10, "lookback": 30},
               "train": {"epochs": 2, "max_steps_per_epoch": 5, "batch_size": 32}})


def tiny_market() -> list[MarketSeries]:
    return [ar1_market(s, N, seed=i) for i, s in enumerate(SYMBOLS)]


def train_and_save(tmp: Path, market: list[MarketSeries], kind: str) -> tuple[Path, Fitted, FeatureStore]:
    """Train ``kind`` on the first TRAIN_BARS bars and save it to ``tmp/kind.pt``."""
    settings = tiny_settings(kind)
    store = FeatureStore(market)
    end = T0_MS + TRAIN_BARS * HOUR_MS
    fitted = fit_range(store, kind, settings.model, T0_MS, end)
    path = tmp / f"{kind}.pt"
    save_checkpoint(path, fitted.forecaster, scaler=fitted.scaler, symbols=SYMBOLS, timeframe="1h",
                    data_range=data_range(market, T0_MS, end), summary=fitted.summary,
                    settings_json=settings.to_json())
    return path, fitted, store
