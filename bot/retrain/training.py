"""``bot train``'s step between reading the data and printing a first forecast: fit a model on a time range and
save its checkpoint.  The daemon's retrains (:mod:`bot.retrain.worker`) run the same function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import Settings


def train_checkpoint(settings: Settings, model: str, series: Sequence[Any], start_ms: int, end_ms: int,
                     out: Path, device: Any, progress: Any = None) -> dict[str, Any]:
    """Fit ``model`` on ``[start_ms, end_ms)`` of ``series`` and save its checkpoint to ``out``; the fit's summary.

    What ``bot train`` does between loading the CSV files and printing a first forecast.
    """
    from strategies.checkpoint import save_checkpoint
    from strategies.dataset import FeatureStore
    from strategies.workflow import assessment_seed, data_range, fit_range, model_horizon

    store = FeatureStore(list(series), horizon=model_horizon(model, settings.model))
    t0 = time.perf_counter()
    fitted = fit_range(store, model, settings.model, start_ms, end_ms, device, progress)
    seconds = time.perf_counter() - t0
    summary = {**fitted.summary, "train_range": list(fitted.train_range), "val_range": list(fitted.val_range),
               "seconds": round(seconds, 1), "device": str(device), "assessment": assessment_seed(fitted, store)}
    model_json = json.dumps(json.loads(settings.to_json())["model"], sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, fitted.forecaster, scaler=fitted.scaler, symbols=tuple(s.symbol for s in series),
                    timeframe=settings.market.timeframe, data_range=data_range(series, start_ms, end_ms),
                    summary=summary, settings_json=model_json)
    return summary
