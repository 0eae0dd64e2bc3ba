"""Train one forecaster on a time range: the step `bot train` runs once and `bot evaluate` once per fold.

The range ``[start_ms, end_ms)`` is split in time: the earlier ``1 - val_fraction``
trains the weights and the normalisation, the latest ``val_fraction`` serves early
stopping and every choice a model makes (K of the knn, fusion weights).  Nothing
after ``end_ms`` is read, so the caller decides what the model may see.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from strategies.dataset import FeatureStore, MarketSeries, WindowDataset
from strategies.features import N_FEATURES, FeatureScaler
from strategies.models.base import Forecaster, Progress
from strategies.models.registry import new_forecaster
from strategies.settings import ModelSettings

log = logging.getLogger("strategies.workflow")


def model_horizon(kind: str, settings: ModelSettings) -> int:
    """Forecast steps of ``kind`` as configured (knn and fusion follow their recurrent member)."""
    if kind == "cnn_gru":
        return settings.cnn_gru.horizon
    if kind == "lstm":
        return settings.lstm.horizon
    if kind == "multi_asset":
        return settings.multi_asset.horizon
    if kind == "fusion":
        return model_horizon(settings.fusion.recurrent, settings)
    return 1


@dataclass
class Fitted:
    forecaster: Forecaster
    scaler: FeatureScaler
    summary: dict[str, Any]
    train_range: tuple[int, int]       # open ms of the first and last bar the model learned from
    val_range: tuple[int, int]

    def dataset(self, store: FeatureStore, start_ms: int, end_ms: int) -> WindowDataset:
        """Samples of ``[start_ms, end_ms)`` shaped for this forecaster, normalised its way."""
        f = self.forecaster
        return store.dataset(start_ms, end_ms, f.lookback, self.scaler, aligned=f.aligned)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit_range(store: FeatureStore, kind: str, settings: ModelSettings, start_ms: int, end_ms: int,
              device: torch.device | str = "cpu", progress: Progress | None = None) -> Fitted:
    """Train ``kind`` on ``[start_ms, end_ms)`` with its latest ``val_fraction`` held out for validation."""
    tf = store.series[0].timeframe_ms
    val_start = start_ms + int((1.0 - settings.train.val_fraction) * (end_ms - start_ms)) // tf * tf
    scaler = store.fit_scaler(start_ms, val_start)
    seed_everything(settings.train.seed)
    forecaster = new_forecaster(kind, settings, N_FEATURES, store.symbols).to(device)
    train = store.dataset(start_ms, val_start, forecaster.lookback, scaler, aligned=forecaster.aligned)
    val = store.dataset(val_start, end_ms, forecaster.lookback, scaler, aligned=forecaster.aligned)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{kind}: the range has {len(train)} training and {len(val)} validation samples; "
                         f"it needs more history than the model's {forecaster.lookback}-bar lookback "
                         f"plus the features' warm-up")
    log.info("%s: %d training samples, %d validation samples", kind, len(train), len(val))
    summary = forecaster.fit(train, val, progress)
    return Fitted(forecaster, scaler, dict(summary), (start_ms, val_start - tf), (val_start, end_ms - tf))


def data_range(series: Sequence[MarketSeries], start_ms: int, end_ms: int) -> dict[str, tuple[int, int]]:
    """Per symbol, the first and last bar inside ``[start_ms, end_ms)``."""
    out = {}
    for s in series:
        inside = s.open_ms[(s.open_ms >= start_ms) & (s.open_ms < end_ms)]
        if len(inside):
            out[s.symbol] = (int(inside[0]), int(inside[-1]))
    return out


def assessment_seed(fitted: Fitted, store: FeatureStore) -> dict[str, dict[str, list[float]]]:
    """The skill regression and calibration of ``fitted`` on its validation range, per symbol: the seeds the
    engine's scoring stage starts from (:func:`strategies.assessed.seeds_from_summary`).

    The validation range also chose the early-stopping epoch, so the seed is a little optimistic; the
    engine caps its weight (``forecast.skill.seed_bars``) and the trade log's own outcomes take over.
    """
    from strategies.features import TARGET_SCALE
    from strategies.models.base import forecast_dataset
    from strategies.skill import skill_stats

    tf = store.series[0].timeframe_ms
    ds = fitted.dataset(store, fitted.val_range[0], fitted.val_range[1] + tf)
    if len(ds) == 0:
        return {}
    mu, sigma = forecast_dataset(fitted.forecaster, ds)
    y = ds.y()
    if ds.aligned:
        a = ds.ends.shape[1]
        sym = np.tile(np.arange(a), len(ds))
        mu1, sd1, y1 = mu[:, :, 0].reshape(-1), sigma[:, :, 0].reshape(-1), y[:, :, 0].reshape(-1)
    else:
        sym, mu1, sd1, y1 = ds.symbol_index(), mu[:, 0], sigma[:, 0], y[:, 0]
    mu1, sd1, y1 = (np.asarray(v, dtype=np.float64) / TARGET_SCALE for v in (mu1, sd1, y1))
    out: dict[str, dict[str, list[float]]] = {}
    for i, symbol in enumerate(ds.symbols):
        pick = (sym == i) & np.isfinite(mu1) & np.isfinite(y1) & (sd1 > 0)
        if pick.sum() < 10:
            continue
        z = np.abs(y1[pick] - mu1[pick]) / sd1[pick]
        q68, q95 = (float(q) for q in np.quantile(z, [0.68, 0.95]))
        out[symbol] = {"skill": skill_stats(mu1[pick].tolist(), y1[pick].tolist()).to_list(),
                       "calibration": [q68, max(q95, q68 * 1.0001), float(np.mean(z * z))]}
    return out
