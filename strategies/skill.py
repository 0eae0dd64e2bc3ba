"""Demonstrated skill: how much of a model's μ the market has actually paid, per model and symbol.

An exponentially weighted regression through the origin of the realised next-bar log return r on
the forecast mean μ the model gave for it (its *raw* μ):

    r = β μ + e,      β̂ = Σ w μ r / Σ w μ²,
    Var(β̂) = s² · Σ w² μ² / (Σ w μ²)²,      s² = Σ w (r − β̂ μ)² / Σ w

(weights halve every ``halflife_bars``; the Σ w² term is the weighted-least-squares variance with
the effective sample size the decay leaves).  The scale the decision applies to μ is the lower
confidence bound of β̂, clipped:

    b = clip(β̂ − z · se(β̂), 0, max_scale)      (0 until ``min_bars`` effective outcomes are in)

so a model that has not shown that its μ points the right way, by more than noise, has effective
μ = b·μ = 0 and cannot trade; a model that has shown it keeps the part of μ the market confirmed.
The uncertainty of the effective mean is se(β̂)·|μ|.  A model whose μ is right in direction but
too timid gets b > 1 (up to ``max_scale``); one whose μ points the wrong way gets b = 0, never a
sign flip (a contrarian signal must be demonstrated by a model that forecasts it).

Pure arithmetic on plain floats: the engine calls it for every symbol at every bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SkillStats:
    """Sufficient statistics of the weighted regression (weights already decayed to the last outcome)."""

    sw: float = 0.0      # Σ w
    sw2: float = 0.0     # Σ w²
    smm: float = 0.0     # Σ w μ²
    s2mm: float = 0.0    # Σ w² μ²
    smr: float = 0.0     # Σ w μ r
    srr: float = 0.0     # Σ w r²

    def updated(self, mu: float, r: float, decay: float) -> SkillStats:
        """The statistics after one more outcome (``decay`` = 2^(−1/half-life) on the old ones)."""
        if not (math.isfinite(mu) and math.isfinite(r)):
            return self
        d2 = decay * decay
        return SkillStats(self.sw * decay + 1.0, self.sw2 * d2 + 1.0, self.smm * decay + mu * mu,
                          self.s2mm * d2 + mu * mu, self.smr * decay + mu * r, self.srr * decay + r * r)

    def scaled(self, weight: float) -> SkillStats:
        """Every weight multiplied by ``weight`` (a seed's strength capped)."""
        k2 = weight * weight
        return SkillStats(self.sw * weight, self.sw2 * k2, self.smm * weight, self.s2mm * k2,
                          self.smr * weight, self.srr * weight)

    @property
    def n_eff(self) -> float:
        """Effective number of outcomes, (Σ w)² / Σ w²."""
        return self.sw * self.sw / self.sw2 if self.sw2 > 0 else 0.0

    def beta(self) -> tuple[float, float]:
        """(β̂, se(β̂)); (0, inf) while μ has never been away from zero."""
        if not self.smm > 0 or not self.sw > 0:
            return 0.0, math.inf
        beta = self.smr / self.smm
        resid = max(self.srr - 2.0 * beta * self.smr + beta * beta * self.smm, 0.0) / self.sw
        se = math.sqrt(resid * self.s2mm) / self.smm
        return beta, se

    def to_list(self) -> list[float]:
        return [self.sw, self.sw2, self.smm, self.s2mm, self.smr, self.srr]

    @classmethod
    def from_list(cls, values: list[float] | tuple[float, ...]) -> SkillStats:
        sw, sw2, smm, s2mm, smr, srr = (float(v) for v in values)
        return cls(sw, sw2, smm, s2mm, smr, srr)


def skill_stats(mu: list[float] | tuple[float, ...], r: list[float] | tuple[float, ...]) -> SkillStats:
    """Unweighted statistics of paired (μ, realised r), e.g. of a validation range (non-finite pairs skipped)."""
    stats = SkillStats()
    for m, x in zip(mu, r):
        stats = stats.updated(m, x, 1.0)
    return stats


def decay_for(halflife_bars: float) -> float:
    return 0.5 ** (1.0 / halflife_bars)


def effective_scale(stats: SkillStats, z: float, min_bars: float, max_scale: float) -> tuple[float, float, float]:
    """(b, β̂, se(β̂)): the scale the decision applies to μ, and the estimate it rests on."""
    beta, se = stats.beta()
    if stats.n_eff < min_bars or not math.isfinite(se):
        return 0.0, beta, se
    return min(max(beta - z * se, 0.0), max_scale), beta, se
