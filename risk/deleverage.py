"""VaR-based deleveraging: shrink the biggest risk contributor until the book fits a VaR budget.

Each step takes the symbol with the largest positive risk contribution (ties: largest |exposure|,
then lowest index) and multiplies its exposure by (1 − ``step``); an exposure below 1e-9 × the
initial gross exposure becomes exactly 0.  A step moves an exposure toward zero only: it never
grows an |exposure| and never flips a sign.

A full step can *raise* VaR on a hedged book (long 1, short 0.9 of a perfectly correlated pair:
cutting the long by 25% leaves a net short bigger than the net long was), so a step that would
raise VaR is retried at half the fraction, up to :data:`BACKTRACK_HALVINGS` times, then on the
next positive contributor.  Every recorded step therefore has ``var_after <= var_before``.

It stops when VaR ≤ ``budget``, when no symbol with a positive contribution can be cut without
raising VaR, or after ``max_steps`` steps.  Pure: the risk measure is any callable returning an
object with ``.var`` and ``.contributions`` (e.g. :class:`risk.var.VarEstimate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

BACKTRACK_HALVINGS = 6
"""Times a VaR-raising step is retried at half the fraction (0.25 → 0.0039 at the default)."""


class RiskMeasure(Protocol):
    """What deleveraging needs from a risk estimate: VaR and per-symbol contributions."""

    @property
    def var(self) -> float: ...

    @property
    def contributions(self) -> npt.ArrayLike: ...


RiskFn = Callable[[FloatArray], RiskMeasure]


@dataclass(frozen=True, slots=True)
class DeleverageStep:
    """One exposure cut and the binding VaR before and after it."""

    symbol_index: int
    exposure_before: float
    exposure_after: float
    var_before: float
    var_after: float


@dataclass(frozen=True, slots=True, eq=False)
class DeleverageResult:
    """The book after deleveraging, the steps taken, its VaR and whether it fits the budget."""

    exposures: FloatArray
    steps: tuple[DeleverageStep, ...]
    var: float
    within_budget: bool


def deleverage(exposures: npt.ArrayLike, risk_fn: RiskFn, budget: float, step: float = 0.25,
               max_steps: int = 100) -> DeleverageResult:
    """Cut the largest positive VaR contributor by ``step`` of its exposure until VaR ≤ ``budget``."""
    w = np.array(exposures, dtype=float)
    if w.ndim != 1 or not np.isfinite(w).all():
        raise ValueError(f"exposures must be a finite 1-D array, got shape {w.shape}")
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive finite VaR in quote currency, got {budget!r}")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps!r}")
    tiny = 1e-9 * float(np.abs(w).sum())
    var, contrib = _measure(risk_fn, w)
    steps: list[DeleverageStep] = []
    while var > budget and len(steps) < max_steps:
        taken = _best_step(w, var, contrib, risk_fn, step, tiny)
        if taken is None:
            break
        index, after, var_after, contrib = taken
        steps.append(DeleverageStep(index, float(w[index]), after, var, var_after))
        w[index] = after
        var = var_after
    w.setflags(write=False)
    return DeleverageResult(w, tuple(steps), var, var <= budget)


def scale_factors(initial: npt.ArrayLike, final: npt.ArrayLike) -> FloatArray:
    """final / initial per symbol (1 where initial is 0): multiply order quantities by these."""
    a = np.asarray(initial, dtype=float)
    b = np.asarray(final, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"initial and final differ in shape: {a.shape} vs {b.shape}")
    out = np.ones_like(a)
    held = a != 0
    out[held] = b[held] / a[held]
    return out


def _best_step(w: FloatArray, var: float, contrib: FloatArray, risk_fn: RiskFn, step: float,
               tiny: float) -> tuple[int, float, float, FloatArray] | None:
    """The first cut, by contribution order, that does not raise VaR: (index, after, var, contrib)."""
    for index in _candidates(w, contrib):
        fraction = step
        for _ in range(BACKTRACK_HALVINGS + 1):
            after = float(w[index]) * (1.0 - fraction)
            if abs(after) < tiny:
                after = 0.0
            trial = w.copy()
            trial[index] = after
            var_after, contrib_after = _measure(risk_fn, trial, copy=False)  # trial is already a copy
            if var_after <= var:
                return index, after, var_after, contrib_after
            fraction /= 2.0
    return None


def _candidates(w: FloatArray, contrib: FloatArray) -> list[int]:
    """Held symbols with a positive contribution: largest first, then largest |w|, then lowest index."""
    held = np.flatnonzero((contrib > 0) & (w != 0))
    # lexsort is stable and held is ascending, so equal keys keep the lowest index first.
    return held[np.lexsort((-np.abs(w[held]), -contrib[held]))].tolist()


def _measure(risk_fn: RiskFn, w: FloatArray, copy: bool = True) -> tuple[float, FloatArray]:
    """VaR and contributions of the book ``w`` (given a copy, so risk_fn cannot alter it; ``copy=False``
    when ``w`` is a throw-away copy already)."""
    est = risk_fn(w.copy() if copy else w)
    var = float(est.var)
    contrib = np.asarray(est.contributions, dtype=float)
    if not math.isfinite(var) or contrib.shape != w.shape or not np.isfinite(contrib).all():
        raise ValueError(f"risk_fn must return a finite var and {w.shape} finite contributions")
    return var, contrib
