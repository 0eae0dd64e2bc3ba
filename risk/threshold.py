"""The minimal decision step: σ-gate, signal strength with hysteresis, target as a fraction of equity.

For each symbol at the close of a bar, with forecast N(μ, σ²) of the next log return:

1. σ above ``sigma_max`` → the forecast is too uncertain: target flat (no new exposure).
2. strength s = |μ| / σ.  s ≥ ``entry_strength`` → target ``position_fraction`` of
   equity in the direction of μ (this may open or flip a position).
3. an open position in the direction of μ is kept while s ≥ ``exit_strength``
   (hysteresis: a signal wobbling around the entry threshold does not churn);
   otherwise it is closed.
4. an order is sent only when it moves the position by more than
   ``rebalance_tolerance`` of the target, so drifting prices do not cause
   a trade every bar.

Every outcome, a refusal included, is a :class:`Decision` with its reason.
Pure: no I/O, no clock.  The full risk module (asymmetric thresholds, leverage,
VaR, drawdown states) is built on top of this in ``risk/``.
"""

from __future__ import annotations

from decimal import Decimal

from bot.config import DecisionSettings
from bot.events import Decision, Forecast
from bot.execution.paper import rounded_qty


def _sign(x: float | Decimal) -> int:
    return (x > 0) - (x < 0)


def decide(forecast: Forecast, current_qty: Decimal, price: Decimal, equity: Decimal,
           settings: DecisionSettings, qty_step: Decimal) -> Decision:
    """The decision for one symbol; ``price`` is the close the forecast was made at."""
    mu, sigma = forecast.mu, forecast.sigma
    cur_dir = _sign(current_qty)
    strength = abs(mu) / sigma if sigma > 0 else 0.0
    direction = _sign(mu)
    facts = f"mu={mu:.6f} sigma={sigma:.6f} |mu|/sigma={strength:.3f}"

    if not sigma > 0 or sigma != sigma:
        target_dir, why = 0, f"invalid sigma {sigma}: flat"
    elif sigma > settings.sigma_max:
        target_dir, why = 0, f"gated: sigma {sigma:.6f} > sigma_max {settings.sigma_max}: flat"
    elif strength >= settings.entry_strength and direction != 0:
        target_dir = direction
        why = f"signal: {facts} >= entry {settings.entry_strength}: {'long' if direction > 0 else 'short'}"
    elif cur_dir != 0 and direction == cur_dir and strength >= settings.exit_strength:
        target_dir, why = cur_dir, f"hold: {facts} >= exit {settings.exit_strength}"
    elif cur_dir != 0:
        target_dir, why = 0, f"exit: {facts} below exit {settings.exit_strength} or reversed"
    else:
        target_dir, why = 0, f"weak: {facts} < entry {settings.entry_strength}"

    if equity <= 0 or price <= 0:
        target_dir, why = 0, f"no equity ({equity}) or price ({price}) to size a position: flat"
    size = rounded_qty(Decimal(str(settings.position_fraction)) * equity / price, qty_step)
    target = size * target_dir
    if target_dir != 0 and target_dir == cur_dir:
        tolerance = Decimal(str(settings.rebalance_tolerance)) * size
        if abs(target - current_qty) <= tolerance:
            target = current_qty
    delta = target - current_qty
    if delta == 0:
        action = "none"
    else:
        action = "buy" if delta > 0 else "sell"
    return Decision(forecast.symbol, forecast.bar_ms, action, target, current_qty, why)
