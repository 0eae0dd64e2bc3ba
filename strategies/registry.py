"""Build the predictor the config names: the baseline, or a trained checkpoint served by TorchPredictor.

Every learned model needs a checkpoint from ``bot train``.  Without one, or with
one that does not fit the config, start-up stops with a ConfigError that says
what differs and the exact command to run; nothing is traded on an untrained net.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strategies.assessed import AssessedPredictor, seeds_from_summary
from strategies.base import Predictor
from strategies.baseline import EwmaMomentumPredictor
from strategies.errors import ConfigError
from strategies.events import Forecast
from strategies.settings import ForecastSettings, ModelSettings


class MarketSection(Protocol):
    """The ``[market]`` keys a predictor is built for (``bot.config.MarketSettings``)."""

    @property
    def symbols(self) -> tuple[str, ...]: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def window(self) -> int: ...
    @property
    def timeframe_ms(self) -> int: ...


class Settings(Protocol):
    """The sections of the whole configuration (``bot.config.Settings``) that choose and score a predictor."""

    @property
    def model(self) -> ModelSettings: ...
    @property
    def market(self) -> MarketSection: ...
    @property
    def forecast(self) -> ForecastSettings: ...


def build_predictor(settings: Settings) -> Predictor:
    m = settings.model
    if m.name == "baseline":
        b = m.baseline
        return EwmaMomentumPredictor(b.momentum_bars, b.mu_shrink, b.ewma_lambda, b.sigma_floor)
    # torch and the models load only when a learned model is configured.
    from strategies.checkpoint import check_compatible, load_checkpoint, train_command
    from strategies.predictor import TorchPredictor, resolve_device

    symbols = settings.market.symbols
    if not m.checkpoint:
        raise ConfigError(f"config key 'model.checkpoint' is empty, and model '{m.name}' must be trained first: "
                          f"run {train_command(m.name, symbols)}")
    device = resolve_device(m.device)
    ckpt = load_checkpoint(m.checkpoint, device)
    check_compatible(ckpt, m.checkpoint, m.name, symbols, settings.market.timeframe, settings.market.window)
    return TorchPredictor(ckpt, device, cuda_graph=m.cuda_graph, sigma_floor=m.baseline.sigma_floor)


def assess(settings: Settings, predictor: Predictor, logged: Sequence[Forecast] = ()) -> AssessedPredictor:
    """``predictor`` behind the scoring stage (skill, calibration, monitor), seeded from its checkpoint's
    validation range and resumed from the last ``logged`` forecasts of a run."""
    ckpt = getattr(predictor, "ckpt", None)
    seeds = seeds_from_summary(ckpt.summary, settings.forecast.skill.seed_bars) if ckpt is not None else {}
    assessed = AssessedPredictor(predictor, settings.forecast, settings.market.timeframe_ms, seeds)
    assessed.restore(logged)
    return assessed
