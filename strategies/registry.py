"""Build the predictor named in the config."""

from __future__ import annotations

from bot.config import ModelSettings
from strategies.base import Predictor
from strategies.baseline import EwmaMomentumPredictor


def build_predictor(settings: ModelSettings) -> Predictor:
    if settings.name == "baseline":
        b = settings.baseline
        return EwmaMomentumPredictor(b.momentum_bars, b.mu_shrink, b.ewma_lambda, b.sigma_floor)
    raise ValueError(f"unknown model {settings.name!r}")  # config validation makes this unreachable
