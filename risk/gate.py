"""The gate: which direction, if any, a forecast earns — net of what trading costs.

Two rules (``risk.gate.rule``).  **net_edge** (the default, :func:`edge_gate_parts`) decides on the
expected log return E over the forecast's horizon (μ already scaled by the model's demonstrated skill,
so a model without skill has E = 0), its standard error se(E), and the cost c of one fill (taker fee +
slippage, as a log return).  Since every position is eventually closed, entering pays c now and c
later; leaving pays c now instead of later:

* σ above ``sigma_max`` (or not a positive number): flat — the model is unsure; a risk exit.
* each position x ∈ {short, flat, long} is worth x·E′ − c·|x − current| + h(x), where h are the
  positions' relative values given costs and the symbol's recent edges (:mod:`risk.band`: what holding
  a position is worth beyond this bar — free bars while the signal agrees, a second fee saved when it
  would be wanted again soon) and E′ is the edge judged conservatively: a new long at
  E − ``long_entry_margin``·se(E), a new short at E + ``short_entry_margin``·se(E), the position held
  at its ``exit_margin``.  The best position is taken; a tie keeps the current one.  With no history
  h(±1) = −c, and this is "enter when the edge pays the round trip 2c, keep while it is positive";
* the no-trade band — where staying wins — comes from costs and the signal's own distribution, with
  no hand-set strengths;
* no demonstrated skill (scale 0): flat, and no position is kept;
* a position younger than ``min_hold_bars`` is neither closed nor flipped by the signal.

**strength** (:func:`gate_parts`), the cost-blind rule of earlier versions, kept for comparison:
for N(μ, σ²) of the next bar's log return, strength s = |μ| / σ:

* σ above ``sigma_max`` (or not a positive number): flat — the model is unsure.
  A risk exit: it is not held back by ``min_hold_bars``.
* s ≥ ``long_entry_strength`` with μ > 0 → long; s ≥ ``short_entry_strength``
  with μ < 0 → short (by default a short needs the stronger signal).
* an open position whose direction μ still points to is kept while
  s ≥ ``exit_strength`` (below the entry thresholds: hysteresis, so noise
  around a threshold does not flip it back and forth);
* a position younger than ``min_hold_bars`` is neither closed nor flipped by
  the signal.

Pure: returns the direction and the reason; never raises on a bad forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from risk.band import Values, best_position, static_values
from risk.settings import GateSettings


@dataclass(frozen=True, slots=True)
class GateResult:
    direction: int      # -1 short, 0 flat, +1 long
    strength: float     # |mu| / sigma (0 when sigma is unusable)
    reason: str
    keep: bool = False  # held by the minimum hold: keep the position as it is, do not resize it


_NAMES = {1: "long", -1: "short", 0: "flat"}


def gate(mu: float, sigma: float, current: int, held_bars: int | None, s: GateSettings) -> GateResult:
    """The direction for one symbol.  ``current`` is the position's direction, ``held_bars``
    how long it has been held (None: unknown, taken as long enough)."""
    return GateResult(*gate_parts(mu, sigma, current, held_bars, s))


def gate_parts(mu: float, sigma: float, current: int, held_bars: int | None, s: GateSettings
               ) -> tuple[int, float, str, bool]:
    """:func:`gate`'s result as a plain tuple (direction, strength, reason, keep): the risk manager calls it
    for every symbol at every bar."""
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        return 0, 0.0, f"unusable forecast mu={mu} sigma={sigma}: flat", False
    strength = abs(mu) / sigma
    facts = f"mu={mu:.6f} sigma={sigma:.6f} |mu|/sigma={strength:.3f}"
    if sigma > s.sigma_max:
        return 0, strength, f"gated: sigma {sigma:.6f} > sigma_max {s.sigma_max}: flat", False
    direction = (mu > 0) - (mu < 0)
    entry = s.long_entry_strength if direction > 0 else s.short_entry_strength
    young = current != 0 and held_bars is not None and held_bars < s.min_hold_bars
    if direction != 0 and strength >= entry:
        if current not in (0, direction) and young:
            return current, strength, (f"min hold: {facts} would flip, held {held_bars} of "
                                       f"{s.min_hold_bars} bars: keep {_NAMES[current]}"), True
        return direction, strength, f"signal: {facts} >= {_NAMES[direction]} entry {entry}", False
    if current != 0 and direction == current and strength >= s.exit_strength:
        return current, strength, f"hold: {facts} >= exit {s.exit_strength}", False
    if young:
        return current, strength, (f"min hold: {facts}, held {held_bars} of {s.min_hold_bars} "
                                   f"bars: keep {_NAMES[current]}"), True
    if current != 0:
        return 0, strength, f"exit: {facts} below exit {s.exit_strength} or reversed: flat", False
    return 0, strength, f"weak: {facts} below {_NAMES[direction] if direction else 'any'} entry: flat", False


def edge_gate_parts(edge: float, edge_se: float, sigma: float, cost: float, current: int, held_bars: int | None,
                    s: GateSettings, skill: float = math.nan, values: Values | None = None
                    ) -> tuple[int, float, str, bool]:
    """The net-edge rule: (direction, net value of the best move over staying, reason, keep).

    ``keep``: the position stays as it is (held, or too young to change): not resized for a new mu.

    ``edge`` is the expected log return over the forecast's horizon, ``edge_se`` its standard error,
    ``cost`` one fill's fee and slippage as a log return, ``values`` the positions' relative values
    (:func:`risk.band.band_values` of the symbol's recent edges; None: no history, the one-bar rule
    "enter when the edge pays 2 × cost"); ``skill`` only enters the reason.
    """
    if not (math.isfinite(edge) and math.isfinite(sigma) and sigma > 0 and cost >= 0 and edge_se >= 0):
        return 0, 0.0, f"unusable forecast edge={edge} se={edge_se} sigma={sigma}: flat", False
    h = values if values is not None else static_values(cost)
    skill_note = "" if math.isnan(skill) else f" skill={skill:.3f}"
    facts = (f"edge={edge:.6f} se={edge_se:.6f} cost={cost:.6f}/fill band h={h[2] - h[1]:+.6f}/"
             f"{h[0] - h[1]:+.6f}{skill_note}")
    if sigma > s.sigma_max:
        return 0, 0.0, f"gated: sigma {sigma:.6f} > sigma_max {s.sigma_max}: flat", False
    young = current != 0 and held_bars is not None and held_bars < s.min_hold_bars
    if skill == 0:
        # No demonstrated skill: the position is risk without an expected return, whatever the band says.
        if young:
            return current, 0.0, (f"min hold: no skill: {facts}, held {held_bars} of {s.min_hold_bars} bars: "
                                  f"keep {_NAMES[current]}"), True
        if current != 0:
            return 0, 0.0, f"exit: no skill: {facts}: no demonstrated skill, no exposure: flat", False
        return 0, 0.0, f"no skill: {facts}: no demonstrated skill, no trade: flat", False

    def shaded(margin: float, sign: int) -> float:
        """The edge judged ``margin`` standard errors against a position of ``sign`` (0 × inf is 0)."""
        return edge - sign * margin * edge_se if margin else edge

    best, value = best_position(current, shaded(s.long_entry_margin, 1), shaded(s.short_entry_margin, -1),
                                shaded(s.exit_margin, current), cost, h)
    gain = value[best] - value[current]
    if best != current and young:
        return current, gain, (f"min hold: {facts}: would go {_NAMES[best]}, held {held_bars} of "
                               f"{s.min_hold_bars} bars: keep {_NAMES[current]}"), True
    if best == current:
        if current != 0:
            return current, 0.0, f"hold: {facts}; staying is worth more than leaving", True
        return 0, 0.0, f"weak: {facts} inside the no-trade band: flat", False
    if best == 0:
        return 0, gain, f"exit: {facts}; leaving is worth {gain:.6f} more than staying: flat", False
    return best, gain, f"edge: {facts}; {_NAMES[best]} is worth {gain:.6f} more than {_NAMES[current]}", False
