"""The risk manager: forecasts and the portfolio in, one decision per symbol and order intents out.

At the close of each bar, for every symbol with a forecast:

1. **score** last bar's forecasts against the realised return and **update the
   trading state** (drawdown, interval coverage → ACTIVE / REDUCING / HALTED);
2. **gate** (σ cap; the expected return net of costs against asymmetric margins in units of its
   standard error, each position valued by the no-trade band of the symbol's recent edges
   (:mod:`risk.band`), minimum hold) → a direction; a held position keeps its size;
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

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from math import isfinite

import numpy as np

from risk.band import Values, band_values, static_values
from risk.deleverage import deleverage
from risk.events import Decision, Delevered, RiskStateLogged
from risk.gate import edge_gate_parts, gate_parts
from risk.qty import rounded_qty, to_step
from risk.settings import RiskSettings
from risk.sizing import fraction_of, gross_factor, position_leverage, vol_per_bar
from risk.state import RiskState, TradingState, update_state
from risk.var import VarEstimate, WindowRisk
from strategies.base import CLOSE
from strategies.events import Forecast

HORIZONS = (1, 24)
# Edges a symbol needs before their distribution values holding a position (a week of hours, as the skill's
# min_bars): fewer, and one strong forecast would look like a signal that always comes back.
BAND_MIN_HISTORY = 168


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


_ZERO = Decimal(0)


def _qty_sign(x: Decimal) -> int:
    """:func:`_sign` of a quantity, without comparing a Decimal to an int twice."""
    if x.__class__ is Decimal and x.is_finite():
        return 0 if x.is_zero() else (-1 if x.is_signed() else 1)
    return _sign(x)


def _exposure(qty: Decimal | int, prices: Mapping[str, Decimal], symbol: str) -> float:
    """``float(qty) * float(prices[symbol])``: for a Decimal zero at a finite Decimal price, the signed
    zero that product is, without the trips through strings."""
    if qty.__class__ is Decimal and qty.is_zero():
        price = prices[symbol]
        if price.__class__ is Decimal and price.is_finite():
            return -0.0 if qty.is_signed() is not price.is_signed() else 0.0
        return (-0.0 if qty.is_signed() else 0.0) * float(price)
    return float(qty) * float(prices[symbol])


def _no_new_exposure(target: list[float], current: list[float], syms: Sequence[str],
                     reasons: dict[str, list[str]], why: str) -> None:
    """Clip ``target`` in place so that no position opens, grows or flips: only reductions pass."""
    note = f"{why}: no new exposure"
    for i, s in enumerate(syms):
        t = target[i]
        cur = current[i]
        flips = ((t > 0) - (t < 0)) != ((cur > 0) - (cur < 0))
        if flips or abs(t) > abs(cur):
            clipped = 0.0 if flips else cur
            if clipped != t:
                reasons[s].append(note)
            target[i] = clipped


class RiskManager:
    def __init__(self, settings: RiskSettings, symbols: Sequence[str], timeframe_ms: int, qty_step: Decimal,
                 state: RiskState, entry_bars: Mapping[str, int] | None = None,
                 previous: Sequence[Forecast] = (), costs: Mapping[str, float] | float = 0.0,
                 edges: Mapping[str, Sequence[float]] | None = None) -> None:
        """``costs``: one fill's fee and slippage as a fraction of notional, per symbol or for all (the
        net-edge rule's round trip is twice that); ``edges``: each symbol's recent expected returns, oldest
        first, as the trade log has them (a restart resumes the no-trade band where it was)."""
        self.s = settings
        self.costs = costs
        n = settings.gate.band_bars
        self._edges: dict[str, deque[float]] = {s: deque((edges or {}).get(s, ())[-n:] if n else (), maxlen=n or 1)
                                                for s in symbols}
        self._values: dict[str, tuple[float, Values]] = {}    # symbol -> (cost, values) of its current edges
        self._nonzero: dict[str, int] = {}                     # symbol -> edges in its history that are not 0
        self.symbols = tuple(symbols)
        self.tf_ms = timeframe_ms
        self.qty_step = qty_step
        self.state = state
        # Bar at which each position took its current direction (for the minimum hold).
        self.entry_bars: dict[str, int] = dict(entry_bars or {})
        self._last_dir: dict[str, int] = {}
        self._prev: dict[str, Forecast] = {f.symbol: f for f in previous}
        self._blocked: dict[str, str] = {}     # source -> why; each blocks new exposure on its own
        self._halt: str | None = None
        self._lift: tuple[str, str] | None = None   # (cause, why) of a pending lift

    # -- overrides from outside the model: the trade log failing, the feed going stale, the operator -----

    def block_new_exposure(self, why: str | None, source: str = "trade log") -> None:
        """While ``why`` is set for ``source``, only orders that shrink positions pass (None lifts that source's
        block; another source's stays)."""
        if why is None:
            self._blocked.pop(source, None)
        else:
            self._blocked[source] = why

    def halt(self, why: str) -> None:
        """HALTED from the next bar on (everything is flattened then); the cool-down counts from that bar."""
        self._halt = why
        self._lift = None

    def lift_halt(self, why: str, cause: str) -> None:
        """From the next bar, leave HALTED or REDUCING for ACTIVE (peak reset to that bar's equity) — only when
        the state's reason starts with ``cause`` (the operator lifts what the operator set, never a drawdown or
        calibration halt); a halt asked for with that cause and not yet taken is dropped."""
        if self._halt is not None and self._halt.startswith(cause):
            self._halt = None
        self._lift = (cause, why)

    # -- state -------------------------------------------------------------------------------------

    def _track_entries(self, bar_ms: int, positions: Mapping[str, Decimal]) -> dict[str, int]:
        """Update the entry bars from the positions; returns each symbol's position direction."""
        signs = {}
        entry_bars, last_dir = self.entry_bars, self._last_dir
        for s in self.symbols:
            d = signs[s] = _qty_sign(positions.get(s, _ZERO))
            if d == 0:
                entry_bars.pop(s, None)
            elif d != last_dir.get(s, d if s in entry_bars else 0):
                entry_bars[s] = bar_ms
            last_dir[s] = d
        return signs

    # -- the decision ---------------------------------------------------------------------------------

    def decide(self, bar_ms: int, forecasts: Sequence[Forecast], windows: np.ndarray,
               positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], equity: Decimal) -> RiskDecision:
        """``forecasts`` and ``windows`` (n, window, 5) are in the same symbol order."""
        returns = np.diff(np.log(windows[:, :, CLOSE]), axis=1).T if len(forecasts) else np.empty((0, 0))
        tf = self.tf_ms
        scores = []
        previous, last, prev_ms = self._prev, None, bar_ms - tf
        for i, f in enumerate(forecasts):
            prev = previous.get(f.symbol)
            if prev is not None and prev.bar_ms == prev_ms:
                if last is None:
                    last = returns[-1].tolist()     # the realised returns of the bar that closed
                # score(prev.mu, prev.sigma, last[i], prev.z68, prev.z95), inline
                prev_mu, prev_sigma, realized = prev.mu, prev.sigma, last[i]
                if isfinite(prev_mu) and isfinite(prev_sigma) and prev_sigma > 0 and isfinite(realized):
                    z = abs(realized - prev_mu) / prev_sigma
                    scores.append((z <= prev.z68, z <= prev.z95))
        self._prev = {f.symbol: f for f in forecasts}
        self.state = update_state(self.state, bar_ms, equity, scores, self.s.state, tf)
        if self._halt is not None:
            self.state = replace(self.state, state=TradingState.HALTED, since_bar_ms=bar_ms, reason=self._halt)
            self._halt = None
        if self._lift is not None:
            cause, lifted = self._lift
            if self.state.state is not TradingState.ACTIVE and self.state.reason.startswith(cause):
                self.state = replace(self.state, state=TradingState.ACTIVE, since_bar_ms=bar_ms, reason=lifted,
                                     peak_equity=equity)
            self._lift = None
        signs = self._track_entries(bar_ms, positions)
        if not forecasts:
            return RiskDecision((), (), (), (), self.state, dict(self.entry_bars))

        eq = float(equity)
        syms = [f.symbol for f in forecasts]
        # Plain floats from here to the VaR budget: the same IEEE operations as on numpy scalars, quicker.
        current_exp = [_exposure(positions.get(s, 0), prices, s) for s in syms]
        gs, sz, entry_bars = self.s.gate, self.s.sizing, self.entry_bars
        bar_vol = vol_per_bar(sz, tf)
        raw: list[float] = []
        why: list[str] = []
        net_edge = gs.rule == "net_edge"
        costs = self.costs
        for f, cur in zip(forecasts, current_exp):
            entry = entry_bars.get(f.symbol)
            held = None if entry is None else (bar_ms - entry) // tf
            if net_edge:
                cost = costs.get(f.symbol, 0.0) if isinstance(costs, Mapping) else float(costs)
                cost += gs.extra_cost_bps / 1e4
                values = self._band(f.symbol, f.expected, cost)
                direction, _, reason, keep = edge_gate_parts(f.expected, f.edge_se, f.sigma, cost,
                                                             (cur > 0) - (cur < 0), held, gs, f.skill, values)
            else:
                direction, _, reason, keep = gate_parts(f.mu, f.sigma, (cur > 0) - (cur < 0), held, gs)
            if net_edge and keep and eq > 0 and direction:
                # A held position keeps its size: Kelly sized the entry, and resizing it with every wobble of
                # mu pays fees the edge never priced.  The risk caps still bind (volatility target, per-symbol cap).
                cap = min(bar_vol / f.sigma, sz.max_position_fraction) if f.sigma > 0 else 0.0
                raw.append(direction * min(abs(cur) / eq, cap))
            else:
                # (a kept position's fraction is a numpy scalar, as it always was: Σ|f| then sums the same types)
                raw.append(np.float64(cur) / eq if keep and eq > 0
                           else fraction_of(direction, f.mu, f.sigma, sz, bar_vol) if direction else 0.0)
            why.append(reason)
        reasons = {s: [r] for s, r in zip(syms, why)}
        # The gross cap counts each symbol once, with its last value (a symbol given twice is one position).
        by_symbol = dict(zip(syms, raw))
        if len(by_symbol) < len(raw):
            raw = [by_symbol[s] for s in syms]
        factor = gross_factor(by_symbol.values(), sz.max_gross_leverage)
        if factor < 1:
            note = f"gross cap {sz.max_gross_leverage}: scaled x{factor:.3f}"
            for s in syms:
                reasons[s].append(note)
        target = (np.array(raw, dtype=float) * factor * eq).tolist() if eq > 0 else [0.0] * len(syms)
        forced = np.zeros(len(syms), dtype=bool)  # risk asked for this cut: no rebalance tolerance

        st = self.state.state
        if st is TradingState.HALTED:
            target = [0.0] * len(syms)
            forced[:] = True
            note = f"HALTED ({self.state.reason}): flat"
            for s in syms:
                reasons[s].append(note)
        elif st is TradingState.REDUCING:
            _no_new_exposure(target, current_exp, syms, reasons, f"REDUCING ({self.state.reason})")
        for blocked in self._blocked.values():
            _no_new_exposure(target, current_exp, syms, reasons, blocked)

        steps: list[Delevered] = []
        estimates: tuple[VarEstimate, ...] = ()
        if eq > 0:
            mu = np.array([f.mu for f in forecasts])
            sigma = np.array([f.sigma for f in forecasts])
            book = np.array(target)
            try:
                book, steps, estimates = self._var_budget(book, forced, syms, returns, mu, sigma, eq, reasons)
            except ValueError as exc:
                # Risk that cannot be measured is not taken: keep only what shrinks exposure.
                target = book.tolist()
                _no_new_exposure(target, current_exp, syms, reasons, f"VaR unavailable ({exc})")
            else:
                target = book.tolist()

        decisions, intents = self._orders(bar_ms, syms, target, forced.tolist(), positions, prices, equity,
                                          reasons, signs)
        return RiskDecision(tuple(decisions), tuple(intents), estimates, tuple(steps), self.state,
                            dict(self.entry_bars))

    def _band(self, symbol: str, edge: float, cost: float) -> Values | None:
        """The positions' values for ``symbol`` after adding this bar's edge to its history (None: no history
        kept, ``band_bars`` = 0).  Recomputed only when the history's contents or the cost changed."""
        if not self.s.gate.band_bars:
            return None
        history = self._edges.setdefault(symbol, deque(maxlen=self.s.gate.band_bars))
        e = edge if isfinite(edge) else 0.0
        dropped = history[0] if len(history) == history.maxlen else None
        history.append(e)
        nonzero = self._nonzero.get(symbol)
        if nonzero is None:
            nonzero = sum(1 for x in history if x != 0.0)
        else:
            nonzero += (e != 0.0) - (dropped is not None and dropped != 0.0)
        self._nonzero[symbol] = nonzero
        if len(history) < min(BAND_MIN_HISTORY, history.maxlen or 1):
            return None              # too few edges to say how the signal behaves: the one-bar rule
        if not nonzero:
            return static_values(cost)   # no signal at all (no skill): what band_values would find, at once
        cached = self._values.get(symbol)
        if cached is not None and cached[0] == cost and dropped == e:
            return cached[1]         # the same multiset of edges: the same values
        values = band_values(history, cost)
        self._values[symbol] = (cost, values)
        return values

    def _var_budget(self, target: np.ndarray, forced: np.ndarray, syms: list[str], returns: np.ndarray,
                    mu: np.ndarray, sigma: np.ndarray, eq: float, reasons: dict[str, list[str]]
                    ) -> tuple[np.ndarray, list[Delevered], tuple[VarEstimate, ...]]:
        """Cut the target book until its binding VaR is within budget; every step is kept."""
        # One window, many trial books: the window's statistics are computed once for all of them.
        window = WindowRisk(returns, mu, sigma, horizons=HORIZONS, alpha=self.s.var.alpha)
        budget = self.s.var.budget_1 * eq
        if not target.any() and isfinite(budget) and budget > 0:
            # A flat book (most bars): VaR 0 is within any budget, so deleveraging would measure it once and
            # cut nothing; its estimates are measured once here (raising what that measure would raise).
            flat = np.array(target, dtype=float)
            return flat, [], tuple(window(flat))
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

    def _orders(self, bar_ms: int, syms: list[str], target: list[float], forced: list[bool],
                positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], equity: Decimal,
                reasons: dict[str, list[str]], signs: Mapping[str, int]) -> tuple[list[Decision], list[OrderIntent]]:
        decisions: list[Decision] = []
        intents: list[OrderIntent] = []
        n = len(self.symbols)
        step, sizing = self.qty_step, self.s.sizing
        tolerance = Decimal(repr(sizing.rebalance_tolerance))
        # A zero target at a finite Decimal price > 0 is 0 × step whatever the price (Decimal(repr(±0.0)) / price
        # rounds to it), and its fraction of a Decimal equity is +0.0: neither is computed again.
        zero = None             # rounded_qty(0, step), made (and the step checked) where it first is needed
        positive = None         # equity > 0, compared where it first is needed
        decimal_equity = equity.__class__ is Decimal
        for i, s in enumerate(syms):
            cur = positions.get(s, _ZERO)
            price = prices[s]
            x = target[i]
            if not price > 0:
                qty = _ZERO
            elif x == 0.0 and price.__class__ is Decimal and price.is_finite():
                if zero is None:
                    zero = rounded_qty(_ZERO, step)
                if cur.__class__ is Decimal and cur.is_zero() and decimal_equity:
                    # Flat and staying flat (most symbols at most bars): nothing to trade.
                    if positive is None:
                        positive = equity > 0
                    reasons[s].append("target +0.000 x equity")
                    decisions.append(Decision(s, bar_ms, "none", zero, cur, "; ".join(reasons[s])))
                    continue
                qty = zero
            else:
                quotient = Decimal(repr(x)) / price
                if zero is None:
                    zero = rounded_qty(_ZERO, step)
                qty = to_step(quotient, step)
                if not forced[i] and qty:
                    d = signs[s] if s in signs else _qty_sign(cur)
                    if (-1 if qty.is_signed() else 1) == d and abs(qty - cur) <= tolerance * abs(qty):
                        qty = cur       # inside the rebalance tolerance: keep the position as it is
            delta = qty - cur
            if positive is None:
                positive = equity > 0
            if qty is zero and decimal_equity:
                fraction = 0.0
                reasons[s].append("target +0.000 x equity")
            else:
                fraction = float(qty * price / equity) if positive else 0.0
                reasons[s].append(f"target {fraction:+.3f} x equity")
            if delta.is_finite():
                action = "none" if not delta else ("sell" if delta.is_signed() else "buy")
            else:
                action = "none" if delta == 0 else ("buy" if delta > 0 else "sell")
            decisions.append(Decision(s, bar_ms, action, qty, cur, "; ".join(reasons[s])))
            if delta:
                lev = position_leverage(fraction, n, sizing)
                intents.append(OrderIntent(s, qty, delta, Decimal(repr(round(lev, 4)))))
        return decisions, intents
