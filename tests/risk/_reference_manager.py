"""A frozen copy of the risk manager's per-bar decision as it was before it was made faster (commit 872bce1).

The differential tests (``test_manager_reference.py``) and ``scripts/bench_risk.py`` compare the live
:class:`risk.manager.RiskManager` with this one: every Decision, OrderIntent, state and entry bar must be
identical.  It carries its own copies of the gate, the sizing functions, the forecast scoring and the
Fraction-based ``rounded_qty``, so later changes to those modules are compared against the originals; only
the VaR measurement (``risk.var``, ``risk.deleverage``) and the value types are shared.  Do not edit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

import numpy as np

import risk.manager as _live
from bot.config import GateSettings, RiskSettings, SizingSettings, StateSettings
from bot.errors import ExecutionError
from risk.events import Decision, Delevered
from risk.manager import OrderIntent, RiskDecision
from risk.state import Z68, Z95, RiskState, TradingState
from risk.var import VarEstimate
from strategies.base import CLOSE
from strategies.events import Forecast

# -- bot/execution/paper.py ---------------------------------------------------------------------------

_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def _is_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def rounded_qty(qty: Decimal, step: Decimal) -> Decimal:
    """Round ``qty`` toward zero to a whole number of ``step`` (never trade more than asked)."""
    if not _is_decimal(step) or step <= 0:
        raise ExecutionError(f"step must be a finite Decimal > 0, got {step!r}")
    if not _is_decimal(qty):
        raise ExecutionError(f"qty must be a finite Decimal, got {qty!r}")
    units = Fraction(qty) / Fraction(step)
    whole = math.floor(units) if units >= 0 else math.ceil(units)
    with localcontext(_EXACT):
        return Decimal(whole) * step



# -- risk/gate.py ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class GateResult:
    direction: int      # -1 short, 0 flat, +1 long
    strength: float     # |mu| / sigma (0 when sigma is unusable)
    reason: str
    keep: bool = False  # held by the minimum hold: keep the position as it is, do not resize it


def _name(direction: int) -> str:
    return {1: "long", -1: "short", 0: "flat"}[direction]


def gate(mu: float, sigma: float, current: int, held_bars: int | None, s: GateSettings) -> GateResult:
    """The direction for one symbol.  ``current`` is the position's direction, ``held_bars``
    how long it has been held (None: unknown, taken as long enough)."""
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        return GateResult(0, 0.0, f"unusable forecast mu={mu} sigma={sigma}: flat")
    strength = abs(mu) / sigma
    facts = f"mu={mu:.6f} sigma={sigma:.6f} |mu|/sigma={strength:.3f}"
    if sigma > s.sigma_max:
        return GateResult(0, strength, f"gated: sigma {sigma:.6f} > sigma_max {s.sigma_max}: flat")
    direction = (mu > 0) - (mu < 0)
    entry = s.long_entry_strength if direction > 0 else s.short_entry_strength
    young = current != 0 and held_bars is not None and held_bars < s.min_hold_bars
    if direction != 0 and strength >= entry:
        if current not in (0, direction) and young:
            return GateResult(current, strength, f"min hold: {facts} would flip, held {held_bars} of "
                                                 f"{s.min_hold_bars} bars: keep {_name(current)}", keep=True)
        return GateResult(direction, strength, f"signal: {facts} >= {_name(direction)} entry {entry}")
    if current != 0 and direction == current and strength >= s.exit_strength:
        return GateResult(current, strength, f"hold: {facts} >= exit {s.exit_strength}")
    if young:
        return GateResult(current, strength, f"min hold: {facts}, held {held_bars} of {s.min_hold_bars} "
                                             f"bars: keep {_name(current)}", keep=True)
    if current != 0:
        return GateResult(0, strength, f"exit: {facts} below exit {s.exit_strength} or reversed: flat")
    return GateResult(0, strength, f"weak: {facts} below {_name(direction) if direction else 'any'} entry: flat")


# -- risk/sizing.py -------------------------------------------------------------------------------------

HOURS_PER_YEAR = 24 * 365


def bars_per_year(timeframe_ms: int) -> float:
    return HOURS_PER_YEAR * 3_600_000 / timeframe_ms


def target_fraction(direction: int, mu: float, sigma: float, s: SizingSettings, timeframe_ms: int) -> float:
    """Signed target exposure / equity for one symbol, before the gross cap."""
    if direction == 0 or not sigma > 0:
        return 0.0
    kelly = s.kelly_fraction * abs(mu) / (sigma * sigma)
    vol_target = s.target_vol_annual / math.sqrt(bars_per_year(timeframe_ms)) / sigma
    return direction * min(kelly, vol_target, s.max_position_fraction)


def cap_gross(fractions: Mapping[str, float], max_gross: float) -> tuple[dict[str, float], float]:
    """Scale all fractions down together so that Σ|f| ≤ ``max_gross``; returns them and the factor."""
    gross = sum(abs(f) for f in fractions.values())
    factor = 1.0 if gross <= max_gross else max_gross / gross
    return {k: f * factor for k, f in fractions.items()}, factor


def position_leverage(fraction: float, n_symbols: int, s: SizingSettings) -> float:
    """Isolated-margin leverage of a position of ``fraction`` × equity (margin budget: equity / n)."""
    return min(s.max_leverage, max(1.0, abs(fraction) * n_symbols))


# -- risk/state.py --------------------------------------------------------------------------------------

def score(mu: float, sigma: float, realized: float) -> tuple[bool, bool] | None:
    """Whether ``realized`` fell inside the forecast's 68 % and 95 % intervals (None: unusable)."""
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0 and math.isfinite(realized)):
        return None
    z = abs(realized - mu) / sigma
    return z <= Z68, z <= Z95


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
    c68, c95, n = st.coverage_68, st.coverage_95, st.outcomes
    for in68, in95 in scores:
        c68 = decay * c68 + (1 - decay) * in68
        c95 = decay * c95 + (1 - decay) * in95
        n += 1
    peak = max(st.peak_equity, equity)
    st = replace(st, coverage_68=c68, coverage_95=c95, outcomes=n, peak_equity=peak)

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


# -- risk/manager.py ------------------------------------------------------------------------------------

def _sign(x: float | Decimal) -> int:
    return int(x > 0) - int(x < 0)


def _no_new_exposure(target: np.ndarray, current: np.ndarray, syms: Sequence[str],
                     reasons: dict[str, list[str]], why: str) -> None:
    """Clip ``target`` in place so that no position opens, grows or flips: only reductions pass."""
    for i, s in enumerate(syms):
        cur = current[i]
        if _sign(target[i]) != _sign(cur) or abs(target[i]) > abs(cur):
            clipped = 0.0 if _sign(target[i]) != _sign(cur) else cur
            if clipped != target[i]:
                reasons[s].append(f"{why}: no new exposure")
            target[i] = clipped


class RiskManager:
    def __init__(self, settings: RiskSettings, symbols: Sequence[str], timeframe_ms: int, qty_step: Decimal,
                 state: RiskState, entry_bars: Mapping[str, int] | None = None,
                 previous: Sequence[Forecast] = ()) -> None:
        self.s = settings
        self.symbols = tuple(symbols)
        self.tf_ms = timeframe_ms
        self.qty_step = qty_step
        self.state = state
        # Bar at which each position took its current direction (for the minimum hold).
        self.entry_bars: dict[str, int] = dict(entry_bars or {})
        self._last_dir: dict[str, int] = {}
        self._prev: dict[str, Forecast] = {f.symbol: f for f in previous}
        self._blocked: str | None = None
        self._halt: str | None = None
        self._live = _live.RiskManager(settings, symbols, timeframe_ms, qty_step, state)  # its VaR budget only

    # -- overrides from outside the model: the trade log failing, the feed going stale -------------------

    def block_new_exposure(self, why: str | None) -> None:
        """While ``why`` is set, only orders that shrink positions pass (None lifts it)."""
        self._blocked = why

    def halt(self, why: str) -> None:
        """HALTED from the next bar on (everything is flattened then); the cool-down counts from that bar."""
        self._halt = why

    # -- state -------------------------------------------------------------------------------------

    def _track_entries(self, bar_ms: int, positions: Mapping[str, Decimal]) -> None:
        for s in self.symbols:
            d = _sign(positions.get(s, Decimal(0)))
            if d == 0:
                self.entry_bars.pop(s, None)
            elif d != self._last_dir.get(s, d if s in self.entry_bars else 0):
                self.entry_bars[s] = bar_ms
            self._last_dir[s] = d

    def _held(self, symbol: str, bar_ms: int) -> int | None:
        entry = self.entry_bars.get(symbol)
        return None if entry is None else (bar_ms - entry) // self.tf_ms

    # -- the decision ---------------------------------------------------------------------------------

    def decide(self, bar_ms: int, forecasts: Sequence[Forecast], windows: np.ndarray,
               positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], equity: Decimal) -> RiskDecision:
        """``forecasts`` and ``windows`` (n, window, 5) are in the same symbol order."""
        returns = np.diff(np.log(windows[:, :, CLOSE]), axis=1).T if len(forecasts) else np.empty((0, 0))
        scores = []
        for i, f in enumerate(forecasts):
            prev = self._prev.get(f.symbol)
            if prev is not None and prev.bar_ms == bar_ms - self.tf_ms:
                sc = score(prev.mu, prev.sigma, float(returns[-1, i]))
                if sc is not None:
                    scores.append(sc)
        self._prev = {f.symbol: f for f in forecasts}
        self.state = update_state(self.state, bar_ms, equity, scores, self.s.state, self.tf_ms)
        if self._halt is not None:
            self.state = replace(self.state, state=TradingState.HALTED, since_bar_ms=bar_ms, reason=self._halt)
            self._halt = None
        self._track_entries(bar_ms, positions)
        if not forecasts:
            return RiskDecision((), (), (), (), self.state, dict(self.entry_bars))

        eq = float(equity)
        syms = [f.symbol for f in forecasts]
        current_exp = np.array([float(positions.get(s, 0)) * float(prices[s]) for s in syms])
        reasons: dict[str, list[str]] = {}
        raw: dict[str, float] = {}
        for f, cur in zip(forecasts, current_exp):
            g = gate(f.mu, f.sigma, _sign(cur), self._held(f.symbol, bar_ms), self.s.gate)
            if g.keep and eq > 0:
                raw[f.symbol] = cur / eq
            else:
                raw[f.symbol] = target_fraction(g.direction, f.mu, f.sigma, self.s.sizing, self.tf_ms)
            reasons[f.symbol] = [g.reason]
        fractions, factor = cap_gross(raw, self.s.sizing.max_gross_leverage)
        if factor < 1:
            for s in syms:
                reasons[s].append(f"gross cap {self.s.sizing.max_gross_leverage}: scaled x{factor:.3f}")
        target = np.array([fractions[s] * eq for s in syms]) if eq > 0 else np.zeros(len(syms))
        forced = np.zeros(len(syms), dtype=bool)  # risk asked for this cut: no rebalance tolerance

        st = self.state.state
        if st is TradingState.HALTED:
            target[:] = 0.0
            forced[:] = True
            for s in syms:
                reasons[s].append(f"HALTED ({self.state.reason}): flat")
        elif st is TradingState.REDUCING:
            _no_new_exposure(target, current_exp, syms, reasons, f"REDUCING ({self.state.reason})")
        if self._blocked is not None:
            _no_new_exposure(target, current_exp, syms, reasons, self._blocked)

        mu = np.array([f.mu for f in forecasts])
        sigma = np.array([f.sigma for f in forecasts])
        steps: list[Delevered] = []
        estimates: tuple[VarEstimate, ...] = ()
        if eq > 0:
            try:
                target, steps, estimates = self._var_budget(target, forced, syms, returns, mu, sigma, eq, reasons)
            except ValueError as exc:
                # Risk that cannot be measured is not taken: keep only what shrinks exposure.
                _no_new_exposure(target, current_exp, syms, reasons, f"VaR unavailable ({exc})")

        decisions, intents = self._orders(bar_ms, syms, target, forced, positions, prices, equity, reasons)
        return RiskDecision(tuple(decisions), tuple(intents), estimates, tuple(steps), self.state,
                            dict(self.entry_bars))

    def _var_budget(self, target: np.ndarray, forced: np.ndarray, syms: list[str], returns: np.ndarray,
                    mu: np.ndarray, sigma: np.ndarray, eq: float, reasons: dict[str, list[str]]
                    ) -> tuple[np.ndarray, list[Delevered], tuple[VarEstimate, ...]]:
        """The VaR budget is not frozen: it is the live manager's (a separate piece of work makes it faster)."""
        return self._live._var_budget(target, forced, syms, returns, mu, sigma, eq, reasons)

    def _orders(self, bar_ms: int, syms: list[str], target: np.ndarray, forced: np.ndarray,
                positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], equity: Decimal,
                reasons: dict[str, list[str]]) -> tuple[list[Decision], list[OrderIntent]]:
        decisions: list[Decision] = []
        intents: list[OrderIntent] = []
        n = len(self.symbols)
        for i, s in enumerate(syms):
            cur = positions.get(s, Decimal(0))
            price = prices[s]
            qty = rounded_qty(Decimal(repr(float(target[i]))) / price, self.qty_step) if price > 0 else Decimal(0)
            if not forced[i] and qty != 0 and _sign(qty) == _sign(cur):
                if abs(qty - cur) <= Decimal(repr(self.s.sizing.rebalance_tolerance)) * abs(qty):
                    qty = cur
            delta = qty - cur
            fraction = float(qty * price / equity) if equity > 0 else 0.0
            reasons[s].append(f"target {fraction:+.3f} x equity")
            action = "none" if delta == 0 else ("buy" if delta > 0 else "sell")
            decisions.append(Decision(s, bar_ms, action, qty, cur, "; ".join(reasons[s])))
            if delta != 0:
                lev = position_leverage(fraction, n, self.s.sizing)
                intents.append(OrderIntent(s, qty, delta, Decimal(repr(round(lev, 4)))))
        return decisions, intents
