"""The ``[risk]`` section of ``config.toml``: the gate, sizing, VaR budget and trading-state rules.

Each key declares its type, default and allowed range in its field's metadata;
``bot.config`` composes these sections into the whole configuration and
validates them (naming the key and what is allowed on error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strategies.configkeys import _key


@dataclass(frozen=True, slots=True)
class GateSettings:
    rule: str = _key("net_edge: trade only when the expected log return over the forecast's horizon pays the "
                     "round trip's fees and slippage by a margin in units of the forecast mean's uncertainty; "
                     "strength: the cost-blind |mu|/sigma thresholds of versions before 0.2",
                     default="net_edge", choices=("net_edge", "strength"))
    sigma_max: float = _key("no exposure when the forecast sigma of the next bar's log return is above this",
                            default=0.02, lo=0.0, hi=1.0, lo_open=True)
    long_entry_margin: float = _key("net_edge: a long entry (or flip to long) needs edge - 2 x cost >= this many "
                                    "standard errors of the edge", default=1.0, lo=0.0, hi=100.0)
    short_entry_margin: float = _key("net_edge: the same for a short; by default stronger than for a long",
                                     default=1.5, lo=0.0, hi=100.0)
    exit_margin: float = _key("net_edge: a position is kept while the edge in its direction exceeds this many "
                              "standard errors (0: while staying is expected to earn anything; leaving costs the "
                              "same exit fee now or later)", default=0.0, lo=-100.0, hi=100.0)
    band_bars: int = _key("net_edge: the recent edges whose distribution values holding a position beyond one "
                          "bar (risk/band.py); 0: no history, enter only when one forecast pays the round trip",
                          default=720, lo=0, hi=100_000)
    extra_cost_bps: float = _key("net_edge: cost per fill added to the executor's fee and slippage (spread, "
                                 "impact the paper fill does not model), basis points", default=0.0, lo=0.0,
                                 hi=1000.0)
    long_entry_strength: float = _key("strength: |mu|/sigma a long entry (or a flip to long) needs", default=0.10,
                                      lo=0.0, hi=100.0)
    short_entry_strength: float = _key("strength: |mu|/sigma a short entry (or a flip to short) needs; by default "
                                       "stronger than for a long", default=0.15, lo=0.0, hi=100.0)
    exit_strength: float = _key("strength: an open position is kept while |mu|/sigma in its direction stays at "
                                "or above this (hysteresis: below both entry thresholds)", default=0.03,
                                lo=0.0, hi=100.0)
    min_hold_bars: int = _key("bars a position is held before a signal may close or flip it (risk exits "
                              "are not held back)", default=0, lo=0, hi=10_000)


@dataclass(frozen=True, slots=True)
class SizingSettings:
    kelly_fraction: float = _key("fraction of the full Kelly exposure mu/sigma^2", default=0.25,
                                 lo=0.0, hi=1.0, lo_open=True)
    target_vol_annual: float = _key("volatility target per position, annualised: exposure <= "
                                    "target_bar_vol / sigma", default=0.60, lo=0.0, hi=10.0, lo_open=True)
    max_position_fraction: float = _key("cap on |exposure| / equity per symbol", default=0.50,
                                        lo=0.0, hi=10.0, lo_open=True)
    max_gross_leverage: float = _key("cap on sum |exposure| / equity: the portfolio leverage is in "
                                     "[0, max_gross_leverage]", default=1.5, lo=0.0, hi=20.0, lo_open=True)
    max_leverage: float = _key("highest isolated-margin leverage of one position", default=5.0, lo=1.0, hi=125.0)
    rebalance_tolerance: float = _key("skip orders smaller than this fraction of the target", default=0.2,
                                      lo=0.0, hi=1.0)


@dataclass(frozen=True, slots=True)
class VarSettings:
    alpha: float = _key("VaR / expected-shortfall confidence", default=0.99, lo=0.9, hi=0.9999)
    method: str = _key("VaR that binds the budget: one method, or the largest of the three",
                       default="max", choices=("max", "model", "historical", "cornish_fisher"))
    budget_1: float = _key("1-bar VaR budget as a fraction of equity", default=0.03, lo=0.0, hi=1.0, lo_open=True)
    budget_24: float = _key("24-bar VaR budget as a fraction of equity", default=0.12, lo=0.0, hi=1.0,
                            lo_open=True)
    step: float = _key("each deleveraging step cuts the largest contributor by this fraction", default=0.25,
                       lo=0.01, hi=1.0)


@dataclass(frozen=True, slots=True)
class StateSettings:
    reduce_drawdown: float = _key("drawdown from the equity peak that switches to REDUCING", default=0.10,
                                  lo=0.0, hi=1.0, lo_open=True)
    halt_drawdown: float = _key("drawdown from the equity peak that switches to HALTED (flat)", default=0.20,
                                lo=0.0, hi=1.0, lo_open=True)
    cooldown_bars: int = _key("bars in REDUCING or HALTED before stepping down a level; the equity peak "
                              "is then reset to the current equity", default=24, lo=1, hi=100_000)
    coverage_halflife_bars: int = _key("half-life of the running 68 %/95 % interval coverage", default=168,
                                       lo=1, hi=100_000)
    coverage_min_bars: int = _key("forecasts needed before coverage can change the state", default=100,
                                  lo=1, hi=100_000)
    coverage_tolerance: float = _key("REDUCING when a coverage drifts this far from nominal; HALTED at twice",
                                     default=0.15, lo=0.0, hi=1.0, lo_open=True)


@dataclass(frozen=True, slots=True)
class RiskSettings:
    gate: GateSettings = field(default_factory=GateSettings, metadata={"doc": "gate"})
    sizing: SizingSettings = field(default_factory=SizingSettings, metadata={"doc": "sizing"})
    var: VarSettings = field(default_factory=VarSettings, metadata={"doc": "var"})
    state: StateSettings = field(default_factory=StateSettings, metadata={"doc": "state"})


__all__ = ["GateSettings", "SizingSettings", "VarSettings", "StateSettings", "RiskSettings"]
