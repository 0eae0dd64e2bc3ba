"""Is a closed candle plausible against its symbol's own recent history?  Pure.

A well-formed kline can still be absurd: a close of 99999999999999 passes every
field rule of :mod:`bot.feeds.binance`.  Before the engine decides on a streamed
candle it compares it with the symbol's window; an implausible one is held and
checked against REST (see :meth:`bot.runs.engine.Engine._complete`):

* **ratio** — its open, high, low or close is more than ``max_ratio`` times the
  last close, or less than the last close / ``max_ratio``;
* **sigma** — its close-to-close log return exceeds ``max_sigma`` standard
  deviations of the window's log returns (with at least :data:`MIN_RETURNS`
  consecutive returns, and the deviation floored at :data:`SIGMA_FLOOR`, so a
  flat stretch does not make every later move "infinitely" unlikely).

With no earlier close (a symbol's first bar) nothing can be said: the candle passes.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from bot.events import Candle

MIN_RETURNS = 20        # as the VaR estimates: fewer returns do not measure a deviation
SIGMA_FLOOR = 1e-4      # 0.01 % per bar


def implausibility(candle: Candle, last_close: Decimal | None, recent_closes: np.ndarray,
                   max_ratio: float, max_sigma: float) -> str | None:
    """Why ``candle`` is implausible after ``last_close`` and the consecutive ``recent_closes``; None if it is not."""
    if last_close is None or last_close <= 0:
        return None
    last = float(last_close)
    for name in ("open", "high", "low", "close"):
        ratio = float(getattr(candle, name)) / last
        if ratio > max_ratio or ratio < 1 / max_ratio:
            return (f"{name} {getattr(candle, name)} is {ratio:.4g} x the last close {last_close} "
                    f"(allowed 1/{max_ratio:g} .. {max_ratio:g})")
    closes = recent_closes[recent_closes > 0]
    if len(closes) < MIN_RETURNS + 1:
        return None
    sigma = max(float(np.std(np.diff(np.log(closes)), ddof=1)), SIGMA_FLOOR)
    move = math.log(float(candle.close) / last)
    if abs(move) > max_sigma * sigma:
        return (f"close {candle.close} is a {abs(move) / sigma:.1f} sigma move from the last close {last_close} "
                f"(window sigma {sigma:.3g}; allowed {max_sigma:g})")
    return None


__all__ = ["MIN_RETURNS", "SIGMA_FLOOR", "implausibility"]
