"""Honest selection over a grid: choose on validation data, and say how much of the best is luck.

Pure functions of return matrices (rows: periods, columns: configurations), no I/O.

**Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014).  Among N trials
whose per-period Sharpe ratios have variance V, the best is expected to reach, by luck alone,

    SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))          γ = 0.5772… (Euler–Mascheroni)

and the DSR is the probabilistic Sharpe ratio of the chosen series against SR₀:

    DSR = Φ( (SR − SR₀) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 · SR²) )

with SR, γ₃ (skewness) and γ₄ (kurtosis, 3 for a normal) of the chosen configuration's T returns.  DSR is
the probability that its true Sharpe ratio is above zero once the N trials are accounted for; with N = 1
(SR₀ = 0) it is the plain PSR.

**Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest
Overfitting", 2017), by combinatorially symmetric cross-validation: cut the T rows into S blocks; for every
way of taking S/2 blocks as in-sample (the rest out-of-sample), take the configuration with the best
in-sample Sharpe and its relative rank ω̄ = rank / (N + 1) among all configurations out of sample; λ =
ln(ω̄ / (1 − ω̄)).  PBO = the share of splits with λ ≤ 0: how often the in-sample winner is at or below the
out-of-sample median.  About 0.5 for a grid of pure noise, near 0 when one configuration is truly better.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


def sharpe(returns: np.ndarray) -> np.ndarray | float:
    """Per-period Sharpe ratio of each column (sample sd); 0 where a column is flat."""
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(axis=0, ddof=1)
    mean = r.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0)
    return float(out) if out.ndim == 0 else out


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR₀: the expected largest of ``n_trials`` Sharpe ratios with zero true mean and this variance."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if n_trials == 1 or variance <= 0:
        return 0.0
    z = stats.norm.ppf
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * z(1 - 1 / n_trials)
                                  + EULER_GAMMA * z(1 - 1 / (n_trials * math.e)))


def probabilistic_sharpe(sr: float, sr0: float, t: int, skew: float, kurt: float) -> float:
    """PSR: P(true Sharpe > ``sr0``) given ``sr`` measured on ``t`` returns of this skewness and kurtosis."""
    if t < 2:
        raise ValueError(f"need at least 2 returns, got {t}")
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:   # only for extreme skew with a large Sharpe: the estimator's variance is not defined
        return float("nan")
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)))


@dataclass(frozen=True, slots=True)
class Deflated:
    sharpe: float          # per period, of the chosen configuration
    sr0: float             # expected max Sharpe of the trials by luck, per period
    trials: int
    variance: float        # of the trials' per-period Sharpe ratios
    skew: float
    kurtosis: float        # Pearson (3 for a normal)
    periods: int
    dsr: float


def deflated_sharpe(chosen: np.ndarray, trial_sharpes: np.ndarray) -> Deflated | None:
    """The DSR of the ``chosen`` return series among trials whose per-period Sharpe ratios are given;
    None when the chosen series is flat (no trade: no Sharpe to deflate)."""
    r = np.asarray(chosen, dtype=np.float64)
    if r.size < 3 or float(np.std(r)) == 0:
        return None
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    var = float(np.var(trials, ddof=1)) if trials.size > 1 else 0.0
    sr = float(sharpe(r))
    skew = float(stats.skew(r))
    kurt = float(stats.kurtosis(r, fisher=False))
    sr0 = expected_max_sharpe(max(trials.size, 1), var)
    return Deflated(sr, sr0, int(trials.size), var, skew, kurt, int(r.size),
                    probabilistic_sharpe(sr, sr0, r.size, skew, kurt))


@dataclass(frozen=True, slots=True)
class Overfitting:
    pbo: float                    # share of splits whose in-sample best is at or below the OOS median
    splits: int
    blocks: int
    logits: tuple[float, ...]     # λ of each split


def pbo(returns: np.ndarray, blocks: int = 16, max_splits: int = 5000, seed: int = 0) -> Overfitting:
    """PBO of choosing the best Sharpe among the columns of ``returns`` (T × N), by CSCV with ``blocks``
    (even) row blocks; more than ``max_splits`` combinations are sampled (seeded) instead of enumerated."""
    m = np.asarray(returns, dtype=np.float64)
    t, n = m.shape
    if n < 2:
        raise ValueError("PBO needs at least two configurations")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be even and at least 2, got {blocks}")
    if t < blocks:
        raise ValueError(f"{t} periods cannot be cut into {blocks} blocks")
    edges = np.linspace(0, t, blocks + 1).astype(int)
    parts = [np.arange(edges[i], edges[i + 1]) for i in range(blocks)]
    combos: list[tuple[int, ...]] = list(itertools.combinations(range(blocks), blocks // 2))
    if len(combos) > max_splits:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), max_splits, replace=False))]
    logits = []
    for c in combos:
        is_rows = np.concatenate([parts[i] for i in c])
        oos_rows = np.concatenate([parts[i] for i in range(blocks) if i not in c])
        best = int(np.argmax(sharpe(m[is_rows])))
        oos = np.asarray(sharpe(m[oos_rows]))
        rank = float(stats.rankdata(oos)[best])          # 1 = worst; ties share their mean rank
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    lam = np.array(logits)
    return Overfitting(float(np.mean(lam <= 0)), len(combos), blocks, tuple(lam.tolist()))


def choose(validation: np.ndarray) -> int:
    """The column with the best Sharpe ratio over the validation rows (the first of equals)."""
    return int(np.argmax(np.atleast_1d(sharpe(validation))))


__all__ = ["sharpe", "expected_max_sharpe", "probabilistic_sharpe", "deflated_sharpe", "Deflated", "pbo",
           "Overfitting", "choose", "EULER_GAMMA"]
