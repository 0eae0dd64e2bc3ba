"""Calibration: predictive intervals that mean what they say, and a density with the tails hourly returns have.

The models give N(μ, σ²); on hourly crypto their 68 % interval covers 75–87 % of outcomes and the
95 % interval about 94 %: σ is too wide in the middle and a Gaussian's tails are too thin, so no
single rescaling of σ gets both intervals right (on BTC 2025, σ scaled to cover 68 % covers 90 % at
"95 %").  Three online estimates per model and symbol fix that, each with its own job:

* the **interval multipliers** q₆₈, q₉₅ (in units of the model's σ) are quantile trackers, the
  online conformal method of Angelopoulos, Candès & Tibshirani (2023, "Conformal PID control"):
  after each outcome, ``log q += step · (miss − (1 − level))``.  Whatever the model does, the
  long-run share of misses converges to 1 − level (it cannot drift: every miss pushes q up);
* the **variance scale** v = EW mean of z² (z = (r − μ)/σ): the calibrated σ·√v is the standard
  deviation the risk module sizes and budgets with;
* the **shape**: the Student-t whose central 68 % and 95 % intervals are those two quantiles (ν from
  the ratio q₉₅/q₆₈, Gaussian when the ratio is a Gaussian's or less); NLL is scored with that density.

Pure arithmetic on plain floats, plus a small table of t quantiles built once (scipy).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Z68 = 0.994457883209753   # NormalDist().inv_cdf(0.84): the central 68 % interval of N(0, 1)
Z95 = 1.959963984540054   # NormalDist().inv_cdf(0.975)
LEVEL68, LEVEL95 = 0.68, 0.95
GAUSSIAN_RATIO = Z95 / Z68
NU_MIN = 2.1              # thinner than this, a t has no usable variance
NU_GAUSSIAN = math.inf


@dataclass(frozen=True, slots=True)
class Calibration:
    """One model's calibration for one symbol: multipliers in units of the model's own σ."""

    q68: float = Z68
    q95: float = Z95
    var_scale: float = 1.0     # EW mean of z²

    def updated(self, z: float, step: float, decay: float) -> Calibration:
        """After one outcome with standardised error ``z = (r − μ)/σ_model``."""
        if not math.isfinite(z):
            return self
        a = abs(z)
        miss68 = 1.0 if a > self.q68 else 0.0
        miss95 = 1.0 if a > self.q95 else 0.0
        q68 = self.q68 * math.exp(step * (miss68 - (1.0 - LEVEL68)))
        q95 = self.q95 * math.exp(step * (miss95 - (1.0 - LEVEL95)))
        # The two intervals stay nested whatever the noise does.
        q95 = max(q95, q68 * 1.0001)
        v = decay * self.var_scale + (1.0 - decay) * min(z * z, 1e4)
        return Calibration(q68, q95, v)

    def to_list(self) -> list[float]:
        return [self.q68, self.q95, self.var_scale]

    @classmethod
    def from_list(cls, values: list[float] | tuple[float, ...]) -> Calibration:
        q68, q95, v = (float(x) for x in values)
        return cls(q68, q95, v)


@dataclass(frozen=True, slots=True)
class Calibrated:
    """A calibrated forecast's scale and shape: σ (std), interval half-widths in units of σ, the t's ν."""

    sigma: float
    z68: float
    z95: float
    nu: float


@lru_cache(maxsize=1)
def _t_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ν grid, t_ν's 95/68 quantile ratio (decreasing in ν) and its 0.84 quantile."""
    from scipy.special import stdtrit  # the t quantile as a plain ufunc: scipy.stats' ppf costs seconds here

    nu = np.geomspace(NU_MIN, 1000.0, 400)
    q84 = stdtrit(nu, 0.84)
    ratio = stdtrit(nu, 0.975) / q84
    return nu, ratio, q84


def shape_for(ratio: float) -> tuple[float, float]:
    """(ν, t_ν's 0.84 quantile) of the Student-t whose 95/68 quantile ratio is ``ratio``."""
    nu, ratios, q84 = _t_lists()
    if not ratio > GAUSSIAN_RATIO * 1.0005:
        return NU_GAUSSIAN, Z68
    if ratio >= ratios[-1]:
        return nu[-1], q84[-1]
    # Linear interpolation in the table (ratios ascending as ν falls): called for every symbol at every
    # bar, where two np.interp calls on scalars cost more than the rest of the calibration together.
    i = bisect_left(ratios, ratio)
    if i == 0:
        return nu[0], q84[0]
    w = (ratio - ratios[i - 1]) / (ratios[i] - ratios[i - 1])
    return nu[i - 1] + w * (nu[i] - nu[i - 1]), q84[i - 1] + w * (q84[i] - q84[i - 1])


@lru_cache(maxsize=1)
def _t_lists() -> tuple[list[float], list[float], list[float]]:
    """:func:`_t_table` as plain lists ordered by ascending ratio (descending ν)."""
    nu, ratios, q84 = _t_table()
    return nu[::-1].tolist(), ratios[::-1].tolist(), q84[::-1].tolist()


def calibrated(sigma_model: float, c: Calibration) -> Calibrated:
    """σ, interval multipliers and ν of the calibrated forecast."""
    sigma = sigma_model * math.sqrt(c.var_scale)
    nu, _ = shape_for(c.q95 / c.q68)
    return Calibrated(sigma, c.q68 * sigma_model / sigma, c.q95 * sigma_model / sigma, nu)


def nll(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray, z68: np.ndarray | None = None,
        nu: np.ndarray | None = None) -> np.ndarray:
    """Negative log-likelihood per forecast of the calibrated density.

    Gaussian N(μ, σ²) where ``nu`` is None or infinite; elsewhere the Student-t with ν degrees of
    freedom whose central 68 % interval is μ ± z68·σ.
    """
    mu, sigma, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, y))
    z = (y - mu) / sigma
    out = 0.5 * math.log(2.0 * math.pi) + np.log(sigma) + 0.5 * z * z
    if nu is None or z68 is None:
        return out
    nu = np.asarray(nu, dtype=np.float64)
    z68 = np.asarray(z68, dtype=np.float64)
    t = np.isfinite(nu) & (nu > 0) & np.isfinite(z68)
    if t.any():
        from scipy.special import gammaln, stdtrit

        v = nu[t]
        scale = z68[t] * sigma[t] / stdtrit(v, 0.84)
        u = (y[t] - mu[t]) / scale
        out[t] = (-(gammaln((v + 1) / 2) - gammaln(v / 2)) + 0.5 * np.log(v * math.pi) + np.log(scale)
                  + (v + 1) / 2 * np.log1p(u * u / v))
    return out
