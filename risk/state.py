"""The trading state: ACTIVE → REDUCING → HALTED, on drawdown or when the model stops being calibrated.

* ACTIVE: orders as the gate and sizing ask.
* REDUCING: only orders that shrink a position (no opening, adding or flipping).
* HALTED: every position is closed and nothing opens.

Triggers, evaluated at every bar:

* drawdown from the equity peak ≥ ``reduce_drawdown`` → REDUCING, ≥ ``halt_drawdown`` → HALTED;
* interval coverage: the running (exponentially weighted, half-life
  ``coverage_halflife_bars``) share of outcomes inside the forecasts' 68 % and 95 %
  intervals.  Once ``coverage_min_bars`` outcomes were seen, a drift of more than
  ``coverage_tolerance`` from nominal in either → REDUCING, more than twice that →
  HALTED.  (A model whose 1-σ interval holds 83 % of outcomes, or 50 %, is no
  longer describing the market.)

Escalation is immediate.  Stepping down happens one level at a time, only after
``cooldown_bars`` in the current level and only if the triggers allow it; on each
step down the equity peak is reset to the current equity (a flat book could
never earn back its drawdown, so without the reset a halt would be forever).

Pure: the state is a frozen value; the store persists it so a restart resumes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import IntEnum

from risk.settings import StateSettings
from strategies.calibration import Z68, Z95


class TradingState(IntEnum):
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


@dataclass(frozen=True, slots=True)
class RiskState:
    state: TradingState
    since_bar_ms: int | None          # bar at which the current state began
    peak_equity: Decimal
    reason: str
    coverage_68: float = 0.68         # running coverage, starting at nominal
    coverage_95: float = 0.95
    outcomes: int = 0                 # forecasts scored so far

    @classmethod
    def initial(cls, equity: Decimal) -> RiskState:
        return cls(TradingState.ACTIVE, None, equity, "start")


def score(mu: float, sigma: float, realized: float, z68: float = Z68, z95: float = Z95) -> tuple[bool, bool] | None:
    """Whether ``realized`` fell inside the forecast's 68 % and 95 % intervals, ``mu ± z·sigma`` (None: unusable);
    a calibrated forecast brings its own ``z68``, ``z95``."""
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0 and math.isfinite(realized)):
        return None
    z = abs(realized - mu) / sigma
    return z <= z68, z <= z95


def _triggers(drawdown: float, st: RiskState, s: StateSettings) -> tuple[TradingState, str]:
    level, why = TradingState.ACTIVE, f"drawdown {drawdown:.2%}"
    if drawdown >= s.halt_drawdown:
        level, why = TradingState.HALTED, f"drawdown {drawdown:.2%} >= halt {s.halt_drawdown:.2%}"
    elif drawdown >= s.reduce_drawdown:
        level, why = TradingState.REDUCING, f"drawdown {drawdown:.2%} >= reduce {s.reduce_drawdown:.2%}"
    if st.outcomes >= s.coverage_min_bars:
        drift = max(abs(st.coverage_68 - 0.68), abs(st.coverage_95 - 0.95))
        cov = (f"coverage 68%={st.coverage_68:.1%} 95%={st.coverage_95:.1%} drifts {drift:.1%} "
               f"(tolerance {s.coverage_tolerance:.1%})")
        if drift > 2 * s.coverage_tolerance and level < TradingState.HALTED:
            level, why = TradingState.HALTED, cov
        elif drift > s.coverage_tolerance and level < TradingState.REDUCING:
            level, why = TradingState.REDUCING, cov
    return level, why


def update_state(st: RiskState, bar_ms: int, equity: Decimal, scores: Iterable[tuple[bool, bool]],
                 s: StateSettings, timeframe_ms: int) -> RiskState:
    """The state after bar ``bar_ms``, given its marked equity and the scored forecasts of the bar before."""
    decay = 0.5 ** (1.0 / s.coverage_halflife_bars)
    weight = 1 - decay
    c68, c95, n = st.coverage_68, st.coverage_95, st.outcomes
    for in68, in95 in scores:
        c68 = decay * c68 + weight * in68
        c95 = decay * c95 + weight * in95
        n += 1
    peak = max(st.peak_equity, equity)
    st = RiskState(st.state, st.since_bar_ms, peak, st.reason, c68, c95, n)   # replace(), without its cost

    level, why = _triggers(_drawdown(equity, peak), st, s)
    if level > st.state:
        return replace(st, state=level, since_bar_ms=bar_ms, reason=why)
    cooled = st.since_bar_ms is None or bar_ms - st.since_bar_ms >= s.cooldown_bars * timeframe_ms
    if st.state > TradingState.ACTIVE and cooled:
        # Step down one level with a fresh peak, if the calibration allows it.
        fresh = replace(st, peak_equity=equity)
        level, why = _triggers(0.0, fresh, s)
        if level < st.state:
            new = TradingState(st.state - 1)
            return replace(fresh, state=new, since_bar_ms=bar_ms,
                           reason=f"cool-down of {s.cooldown_bars} bars over; peak reset to {equity}")
    return st


def _drawdown(equity: Decimal, peak: Decimal) -> float:
    return 0.0 if peak <= 0 else max(0.0, float(1 - equity / peak))
