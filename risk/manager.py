"""The risk manager: forecasts and the portfolio in, one decision per symbol and order intents out.

At the close of each bar, for every symbol with a forecast:

1. **score** last bar's forecasts against the realised return and **update the
   trading state** (drawdown, interval coverage → ACTIVE / REDUCING / HALTED);
2. **gate** (σ cap, asymmetric entry thresholds, hysteresis, minimum hold) → a direction;
3. **size** (fractional Kelly, volatility target, per-symbol cap), then the gross cap;
4. apply the **state**: HALTED → flat; REDUCING → no target may open, add or flip;
5. **VaR budget**: if the target book's binding VaR (99 %, 1 and 24 bars, the
   method in config or the largest of model / historical / Cornish-Fisher)
   exceeds its budget, cut the largest contributor step by step until within;
6. **quantities**: target exposure / price rounded down to the quantity step;
   a small rebalance inside ``rebalance_tolerance`` is skipped unless risk
   asked for the cut.

Every outcome, a refusal included, is a :class:`Decision` with its reason; every
deleveraging step is kept with the VaR before and after.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np

from bot.config import RiskSettings
from bot.events import Decision, Delevered, Forecast, RiskStateLogged
from bot.execution.paper import rounded_qty
from risk.deleverage import deleverage
from risk.gate import gate
from risk.sizing import cap_gross, position_leverage, target_fraction
from risk.state import RiskState, TradingState, score, update_state
from risk.var import VarEstimate, WindowRisk
from strategies.base import CLOSE

HORIZONS = (1, 24)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    symbol: str
    target_qty: Decimal
    delta: Decimal          # target − current: > 0 buy, < 0 sell
    leverage: Decimal


@dataclass(frozen=True, slots=True)
class RiskDecision:
    decisions: tuple[Decision, ...]
    intents: tuple[OrderIntent, ...]
    var: tuple[VarEstimate, ...]            # of the final target book
    steps: tuple[Delevered, ...]
    state: RiskState
    entry_bars: Mapping[str, int] = field(default_factory=dict)


def logged_state(state: RiskState, entry_bars: Mapping[str, int]) -> RiskStateLogged:
    """The state as the store logs it."""
    return RiskStateLogged(state.state.name, state.since_bar_ms, state.reason, state.peak_equity,
                           state.coverage_68, state.coverage_95, state.outcomes, tuple(sorted(entry_bars.items())))


def restored_state(logged: RiskStateLogged) -> RiskState:
    """The state a restart resumes from its logged form."""
    return RiskState(TradingState[logged.state], logged.since_bar_ms, logged.peak_equity, logged.reason,
                     logged.coverage_68, logged.coverage_95, logged.outcomes)


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
        """Cut the target book until its binding VaR is within budget; every step is kept."""
        # One window, many trial books: the window's statistics are computed once for all of them.
        window = WindowRisk(returns, mu, sigma, horizons=HORIZONS, alpha=self.s.var.alpha)
        result = deleverage(target, self._binding(window), self.s.var.budget_1 * eq, step=self.s.var.step)
        steps = []
        for n, st_ in enumerate(result.steps, 1):
            steps.append(Delevered(n, syms[st_.symbol_index], st_.exposure_before, st_.exposure_after,
                                   st_.var_before, st_.var_after))
            forced[st_.symbol_index] = True
        for i, s in enumerate(syms):
            if result.exposures[i] != target[i]:
                reasons[s].append(f"VaR budget: exposure cut {target[i]:.2f} -> {result.exposures[i]:.2f}")
        if not result.within_budget:
            for s in syms:
                reasons[s].append("VaR still above budget after the last possible cut")
        final = np.asarray(result.exposures, dtype=float)
        estimates = tuple(window(final))
        return final, steps, estimates

    def _binding(self, window: WindowRisk):  # type: ignore[no-untyped-def]
        """The VaR the budget binds: per horizon the configured method (or the largest), expressed in
        units of the 1-bar budget so that one budget covers both horizons."""
        v = self.s.var
        scale = {1: 1.0, 24: v.budget_1 / v.budget_24}

        def risk_fn(exposures: np.ndarray) -> VarEstimate:
            best: VarEstimate | None = None
            best_var = -1.0
            for e in window(exposures):
                if v.method != "max" and e.method != v.method:
                    continue
                scaled = e.var * scale[e.horizon]
                if scaled > best_var:
                    best_var = scaled
                    best = VarEstimate(e.method, e.horizon, e.alpha, scaled, e.es * scale[e.horizon],
                                       np.asarray(e.contributions) * scale[e.horizon])
            assert best is not None
            return best

        return risk_fn

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
