"""The predictor interface: all symbols' windows in, one forecast per symbol out.

A predictor is called once per closed bar with every tradable symbol's window
stacked into one array, so a neural model can run one batched forward pass.
It must use only the rows it is given (bars up to and including ``bar_ms``):
the engine never shows it a later bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from strategies.events import Forecast

# Column order of a window row; the buffer produces arrays in this order.
OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)


class Predictor(Protocol):
    name: str

    @property
    def min_window(self) -> int:
        """The fewest bars the predictor needs in a window."""
        ...

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        """Forecast the next bar's log return N(mu, sigma²) for each symbol.

        ``windows`` has shape (len(symbols), window, 5), oldest bar first, columns
        open, high, low, close, volume.  Returns forecasts in ``symbols`` order.
        """
        ...


class OneStepGaussianPredictor(Predictor, Protocol):
    """A predictor whose forecasts are one step ahead (``edge`` NaN) and that can give their numbers alone.

    ``predict_moments`` returns what ``predict`` would, as two lists (μ, σ) in ``symbols`` order, without a
    :class:`Forecast` per symbol; the scoring stage (:mod:`strategies.assessed`) builds the one it returns."""

    def predict_moments(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray
                        ) -> tuple[list[float], list[float]]: ...
