"""The skill monitor: a sequential test that tells when a model should be retired (regime change).

Two one-sided CUSUM statistics per model and symbol (Page, 1954), each reset to 0 when it fires:

* **NLL** against the EWMA baseline: d = NLL(r; μ_model, σ) − NLL(r; 0, σ_EWMA), both Gaussian, σ the
  calibrated one.  ``S ← max(0, S + d − nll_allowance)``; fires when S > ``nll_threshold`` — the model
  has been losing to "no forecast, RiskMetrics volatility" by more than the allowance per bar for long
  enough that chance is an unlikely explanation.
* **PIT**: misses of the calibrated 95 % interval.  ``S ← max(0, S + miss − pit_rate)``, fires when
  S > ``pit_threshold`` — a burst of outcomes in the tails that the calibration's slow adaptation has
  not absorbed (a volatility regime the model does not know).

Pure arithmetic on plain floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_nll(mu: float, sigma: float, r: float) -> float:
    z = (r - mu) / sigma
    return _HALF_LOG_2PI + math.log(sigma) + 0.5 * z * z


@dataclass(frozen=True, slots=True)
class MonitorState:
    nll_cusum: float = 0.0
    pit_cusum: float = 0.0


@dataclass(frozen=True, slots=True)
class MonitorStep:
    state: MonitorState
    fired: str          # "" or why the test fired


def monitor_step(state: MonitorState, nll_excess: float, miss95: bool, nll_allowance: float,
                 nll_threshold: float, pit_rate: float, pit_threshold: float) -> MonitorStep:
    """One outcome: the NLL excess over the baseline and whether the 95 % interval missed."""
    s_nll = state.nll_cusum
    if math.isfinite(nll_excess):
        s_nll = max(0.0, s_nll + nll_excess - nll_allowance)
    s_pit = max(0.0, state.pit_cusum + (1.0 if miss95 else 0.0) - pit_rate)
    if s_nll > nll_threshold:
        return MonitorStep(MonitorState(), f"NLL CUSUM {s_nll:.2f} > {nll_threshold} (model worse than the EWMA "
                                           f"baseline by more than {nll_allowance} nats/bar)")
    if s_pit > pit_threshold:
        return MonitorStep(MonitorState(), f"PIT CUSUM {s_pit:.2f} > {pit_threshold} (95 % interval misses "
                                           f"above {pit_rate:.0%} of bars)")
    return MonitorStep(MonitorState(s_nll, s_pit), "")
