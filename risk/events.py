"""The events the risk manager produces: a decision per symbol, deleveraging steps, the trading state.

Frozen, standard library only; prices and quantities are :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Decision:
    """What the decision step chose for one symbol at one bar, refusals included.

    ``action`` is ``"buy"``, ``"sell"`` or ``"none"``; ``reason`` is for the operator.
    """

    symbol: str
    bar_ms: int
    action: str
    target_qty: Decimal
    current_qty: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class RiskStateLogged:
    """The trading state after a bar (ACTIVE / REDUCING / HALTED) and what it rests on."""

    state: str
    since_bar_ms: int | None
    reason: str
    peak_equity: Decimal
    coverage_68: float
    coverage_95: float
    outcomes: int
    entry_bars: tuple[tuple[str, int], ...] = ()   # (symbol, bar its position took its direction)


@dataclass(frozen=True, slots=True)
class Delevered:
    """One deleveraging step: the largest VaR contributor cut, with the binding VaR before and after."""

    step: int
    symbol: str
    exposure_before: float
    exposure_after: float
    var_before: float
    var_after: float


__all__ = ["Decision", "Delevered", "RiskStateLogged"]
