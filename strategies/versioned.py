"""A predictor whose model is replaced between bars: the serving model version, swapped atomically.

    engine ── before a bar: swap(new, version) (if one is due) ──► predict(bar) ──► forecasts of ``version``

The engine calls :meth:`VersionedPredictor.swap` only between bars (its models hook ``bar_begins``, on the event
loop, never while ``predict`` runs in the worker thread), so every bar is decided by exactly one version and
:attr:`version` names it.  The replacement arrives whole (a scored predictor seeded with its own validation
values: :class:`strategies.assessed.AssessedPredictor`), so the swap is one assignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from strategies.events import Forecast


class Served(Protocol):
    """What serves a bar: a :class:`~strategies.base.Predictor`, read-only (a scored one included)."""

    @property
    def name(self) -> str: ...

    @property
    def min_window(self) -> int: ...

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]: ...


class VersionedPredictor:
    """The serving predictor and its models-table version."""

    def __init__(self, inner: Served, version: int) -> None:
        self._current: tuple[Served, int] = (inner, version)

    @property
    def inner(self) -> Served:
        return self._current[0]

    @property
    def version(self) -> int:
        return self._current[1]

    @property
    def name(self) -> str:
        return self._current[0].name

    @property
    def min_window(self) -> int:
        return self._current[0].min_window

    def swap(self, inner: Served, version: int) -> None:
        """Serve ``inner`` as ``version`` from the next call of :meth:`predict` on."""
        self._current = (inner, version)

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        return self._current[0].predict(bar_ms, symbols, windows)
