"""The retraining gate: does a candidate model beat the serving one on bars neither was fitted to choose?

    held-out bars (the most recent ``holdout_bars``; the candidate never trained on them)
        ├── candidate's N(μ, σ²) ──► Scores ─┐
        └── serving model's N(μ, σ²) ─► Scores ─┴─► gate ──► Verdict(accepted, reason)

A candidate replaces the serving model only if, on the same held-out outcomes, it is better on all three:

* **NLL**: its mean Gaussian NLL is lower by at least ``nll_margin`` nats;
* **calibration**: its calibration error (|coverage₆₈ − 0.68| + |coverage₉₅ − 0.95| of its own intervals)
  is at most ``coverage_tolerance`` above the serving model's;
* **demonstrated skill**: the skill scale :func:`strategies.skill.effective_scale` gives its μ on those
  outcomes is at most ``skill_tolerance`` below the serving model's.

Otherwise it is rejected, and the reason names the test that failed with both figures.  Pure arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from strategies.calibration import Z68, Z95
from strategies.skill import effective_scale, skill_stats


@dataclass(frozen=True, slots=True)
class Scores:
    """One model's scores on the held-out bars (log-return units)."""

    n: int                 # outcomes scored
    nll: float             # mean Gaussian NLL of N(μ, σ²), nats
    coverage68: float      # share of outcomes inside μ ± z68·σ
    coverage95: float
    skill: float           # demonstrated skill scale b on these outcomes (0: none shown)
    slope: float           # the regression slope b rests on

    @property
    def calibration_error(self) -> float:
        return abs(self.coverage68 - 0.68) + abs(self.coverage95 - 0.95)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "calibration_error": self.calibration_error}


@dataclass(frozen=True, slots=True)
class GateRule:
    nll_margin: float
    coverage_tolerance: float
    skill_tolerance: float
    skill_z: float = 2.0
    max_scale: float = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str


def score(mu: Sequence[float] | np.ndarray, sigma: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
          z: float = 2.0, max_scale: float = 2.0) -> Scores:
    """Scores of forecasts N(``mu``, ``sigma``²) of outcomes ``y``; non-finite triples are left out."""
    m, s, r = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (mu, sigma, y))
    ok = np.isfinite(m) & np.isfinite(s) & np.isfinite(r) & (s > 0)
    m, s, r = m[ok], s[ok], r[ok]
    if m.size == 0:
        return Scores(0, math.nan, math.nan, math.nan, 0.0, 0.0)
    e = (r - m) / s
    nll = float(np.mean(0.5 * e * e + np.log(s) + 0.5 * math.log(2.0 * math.pi)))
    b, beta, _ = effective_scale(skill_stats(m.tolist(), r.tolist()), z, 0.0, max_scale)
    return Scores(int(m.size), nll, float(np.mean(np.abs(e) <= Z68)), float(np.mean(np.abs(e) <= Z95)),
                  float(b), float(beta))


def gate(candidate: Scores, serving: Scores, rule: GateRule) -> Verdict:
    """Accept ``candidate`` only if it beats ``serving`` on NLL by the margin without losing calibration or skill."""
    if candidate.n == 0 or not math.isfinite(candidate.nll):
        return Verdict(False, "the candidate has no finite forecast on the held-out bars")
    if serving.n == 0 or not math.isfinite(serving.nll):
        return Verdict(True, f"no serving-model score to beat; candidate NLL {candidate.nll:.4f}")
    gain = serving.nll - candidate.nll
    if gain < rule.nll_margin:
        return Verdict(False, f"NLL {candidate.nll:.4f} vs serving {serving.nll:.4f}: better by {gain:.4f} nats, "
                              f"less than the margin {rule.nll_margin}")
    cal_c, cal_s = candidate.calibration_error, serving.calibration_error
    if cal_c > cal_s + rule.coverage_tolerance:
        return Verdict(False, f"calibration error {cal_c:.3f} vs serving {cal_s:.3f} (coverage 68/95 % "
                              f"{candidate.coverage68:.3f}/{candidate.coverage95:.3f}): worse by more than "
                              f"{rule.coverage_tolerance}")
    if candidate.skill < serving.skill - rule.skill_tolerance:
        return Verdict(False, f"demonstrated skill {candidate.skill:.3f} vs serving {serving.skill:.3f}: lower by "
                              f"more than {rule.skill_tolerance}")
    return Verdict(True, f"NLL {candidate.nll:.4f} vs serving {serving.nll:.4f} (better by {gain:.4f} nats), "
                         f"calibration error {cal_c:.3f} vs {cal_s:.3f}, skill {candidate.skill:.3f} vs "
                         f"{serving.skill:.3f}")
