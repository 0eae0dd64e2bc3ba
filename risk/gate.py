"""The σ-gate: which direction, if any, a forecast earns — with asymmetric thresholds and hysteresis.

For a forecast N(μ, σ²) of the next bar's log return, strength s = |μ| / σ:

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

from bot.config import GateSettings


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
