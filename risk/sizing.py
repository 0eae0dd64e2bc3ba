"""Position sizing: fractional Kelly and volatility targeting, capped per symbol and in gross.

For a symbol the gate lets trade in direction d, the target exposure as a
fraction of equity is

    f = d × min( kelly_fraction × |μ| / σ²,          fractional Kelly for a log-return N(μ, σ²)
                 (target_vol_annual / √bars_per_year) / σ,   volatility target
                 max_position_fraction )

and when Σ|f| exceeds ``max_gross_leverage`` every f is scaled down by the same
factor.  The portfolio's leverage Σ|f| is thus dynamic, in [0, max_gross_leverage]:
high when forecasts are strong and calm, low when they are weak or volatile.

Isolated margin: each symbol has an equal share of equity as margin budget, so a
position's leverage is |f| × n_symbols, clamped to [1, max_leverage].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from risk.settings import SizingSettings

HOURS_PER_YEAR = 24 * 365


def bars_per_year(timeframe_ms: int) -> float:
    return HOURS_PER_YEAR * 3_600_000 / timeframe_ms


def target_fraction(direction: int, mu: float, sigma: float, s: SizingSettings, timeframe_ms: int) -> float:
    """Signed target exposure / equity for one symbol, before the gross cap."""
    return fraction_of(direction, mu, sigma, s, vol_per_bar(s, timeframe_ms))


def vol_per_bar(s: SizingSettings, timeframe_ms: int) -> float:
    """The volatility target of one bar, ``target_vol_annual / √bars_per_year``."""
    return s.target_vol_annual / math.sqrt(bars_per_year(timeframe_ms))


def fraction_of(direction: int, mu: float, sigma: float, s: SizingSettings, bar_vol: float) -> float:
    """:func:`target_fraction` with the bar's volatility target (:func:`vol_per_bar`) computed once."""
    if direction == 0 or not sigma > 0:
        return 0.0
    kelly = s.kelly_fraction * abs(mu) / (sigma * sigma)
    return direction * min(kelly, bar_vol / sigma, s.max_position_fraction)


def gross_factor(fractions: Iterable[float], max_gross: float) -> float:
    """The factor that scales all fractions down together so that Σ|f| ≤ ``max_gross`` (1 when within)."""
    gross = sum(map(abs, fractions))
    return 1.0 if gross <= max_gross else max_gross / gross


def cap_gross(fractions: Mapping[str, float], max_gross: float) -> tuple[dict[str, float], float]:
    """Scale all fractions down together so that Σ|f| ≤ ``max_gross``; returns them and the factor."""
    factor = gross_factor(fractions.values(), max_gross)
    return {k: f * factor for k, f in fractions.items()}, factor


def position_leverage(fraction: float, n_symbols: int, s: SizingSettings) -> float:
    """Isolated-margin leverage of a position of ``fraction`` × equity (margin budget: equity / n)."""
    return min(s.max_leverage, max(1.0, abs(fraction) * n_symbols))
