"""Forecaster kinds → their classes, imported lazily (torch models load only when asked for).

Every class offers::

    create(settings: ModelSettings, n_features: int, symbols: tuple[str, ...]) -> forecaster
    params() -> dict          plain values: everything from_state needs besides the weights
    get_state() -> dict       tensors and plain values (see strategies.models.base)
    from_state(params, state) -> forecaster   (classmethod)
"""

from __future__ import annotations

import importlib
from typing import Any

from strategies.models.base import Forecaster
from strategies.settings import ModelSettings

KINDS: dict[str, tuple[str, str]] = {
    "cnn_gru": ("strategies.models.cnn_gru", "CnnGruForecaster"),
    "lstm": ("strategies.models.lstm", "LstmForecaster"),
    "multi_asset": ("strategies.models.multi_asset", "MultiAssetForecaster"),
    "knn": ("strategies.models.knn", "KnnForecaster"),
    "fusion": ("strategies.models.fusion", "FusionForecaster"),
}


def forecaster_class(kind: str) -> Any:
    if kind not in KINDS:
        raise ValueError(f"unknown forecaster {kind!r}; known: {', '.join(KINDS)}")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def new_forecaster(kind: str, settings: ModelSettings, n_features: int, symbols: tuple[str, ...]) -> Forecaster:
    """An untrained forecaster of ``kind`` shaped by ``settings``."""
    return forecaster_class(kind).create(settings, n_features, symbols)


def forecaster_from_state(kind: str, params: dict[str, Any], state: dict[str, Any]) -> Forecaster:
    """Rebuild a trained forecaster from its checkpointed params and state."""
    return forecaster_class(kind).from_state(params, state)
