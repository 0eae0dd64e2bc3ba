"""Portfolio value-at-risk and expected shortfall: model (Gaussian), historical, Cornish-Fisher.

Inputs are float arrays (model inputs, not accounting values):

- ``exposures`` (n,): signed notional per symbol in the quote currency (qty × price; short < 0).
- ``returns`` (T, n): per-bar log returns of the rolling window.  Rows holding a NaN (a symbol
  missing that bar) are dropped; fewer than :data:`MIN_ROWS` complete rows is a ``ValueError``.
- ``mu``, ``sigma`` (n,): the model's predictive mean and st.dev. of the next bar's log return.

Loss convention.  The P&L of the book over ``horizon`` bars is Σ_i w_i (exp(r_i) − 1), r_i the
horizon's log return.  The historical and Cornish-Fisher methods use exactly that (simple returns
of the window's scenarios); the model method uses the linear approximation w · r, so its mean and
covariance are those of the log returns.  All three are linear in the exposures for fixed data,
so every estimate is positively homogeneous: VaR(k·w) = k·VaR(w) for k ≥ 0, hence monotone along
a ray and in the size of a single position.

VaR and ES are POSITIVE losses in the quote currency, floored at 0 (a quantile that is a gain
reports 0).  ``contributions`` are per-symbol Euler allocations summing to ``var`` (all zeros when
``var`` is 0).  Pure: numpy and the stdlib only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MIN_ROWS = 20
"""Fewest complete rows (and fewest overlapping h-bar scenarios) a window-based estimate uses."""

ES_GRID = 200
"""Tail probabilities averaged for the Cornish-Fisher ES (midpoint rule; 1e-4 relative error
against the exact Gaussian ES)."""

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True, eq=False)
class VarEstimate:
    """One VaR/ES estimate of a book: positive losses in quote currency, Euler contributions."""

    method: str
    horizon: int
    alpha: float
    var: float
    es: float
    contributions: FloatArray


def correlation(returns: npt.ArrayLike) -> FloatArray:
    """Pearson correlation of the window's complete rows; symmetric, unit diagonal, PSD.

    A symbol with zero variance has correlation 0 with every other symbol (1 on the diagonal).
    """
    x = _complete_rows(returns, min_rows=2)
    d = x - x.mean(axis=0)
    scale = np.sqrt((d * d).sum(axis=0))
    live = scale > 1e-12 * np.abs(x).max(axis=0)
    n = x.shape[1]
    corr = np.zeros((n, n))
    if live.any():
        z = d[:, live] / scale[live]
        corr[np.ix_(live, live)] = z.T @ z
    corr = np.clip((corr + corr.T) / 2.0, -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return _nearest_psd_correlation(corr)


def model_var(exposures: npt.ArrayLike, mu: npt.ArrayLike, sigma: npt.ArrayLike,
              corr: npt.ArrayLike, horizon: int = 1, alpha: float = 0.99) -> VarEstimate:
    """Gaussian VaR/ES from the model's forecast: mean h·μ_i, st.dev. σ_i·√h, correlation ``corr``.

    VaR = −w·m + z·σ_p, ES = −w·m + σ_p·φ(z)/(1 − α), σ_p = √(wᵀΣw); contributions are the
    Euler terms −w_i m_i + z·w_i (Σw)_i / σ_p.
    """
    _check_horizon_alpha(horizon, alpha)
    w = _vector("exposures", exposures)
    n = w.size
    m = _vector("mu", mu, n) * horizon
    s = _vector("sigma", sigma, n) * math.sqrt(horizon)
    if (s < 0).any():
        raise ValueError("sigma must be non-negative")
    rho = np.asarray(corr, dtype=float)
    if rho.shape != (n, n) or not np.isfinite(rho).all():
        raise ValueError(f"corr must be a finite ({n}, {n}) matrix, got shape {rho.shape}")
    cov = rho * np.outer(s, s)
    # σ_p and Σw/σ_p from w / max|w|: a tiny book's wᵀΣw would underflow to 0.
    size = float(np.abs(w).max(initial=0.0))
    unit = w / size if size > 0.0 else w
    cov_u = cov @ unit
    sigma_u = math.sqrt(max(float(unit @ cov_u), 0.0))
    sigma_p = size * sigma_u
    z = _NORMAL.inv_cdf(alpha)
    mean_loss = -w * m
    var_raw = float(mean_loss.sum()) + z * sigma_p
    es_raw = float(mean_loss.sum()) + sigma_p * _NORMAL.pdf(z) / (1.0 - alpha)
    if var_raw <= 0.0:
        contributions = np.zeros(n)
    elif sigma_u > 0.0:
        contributions = mean_loss + z * w * cov_u / sigma_u
    else:
        contributions = mean_loss
    return _estimate("model", horizon, alpha, var_raw, es_raw, contributions)


def historical_var(exposures: npt.ArrayLike, returns: npt.ArrayLike, horizon: int = 1,
                   alpha: float = 0.99) -> VarEstimate:
    """Historical-simulation VaR/ES over the window's scenarios.

    Scenarios: for ``horizon`` h > 1, overlapping h-bar sums of the (complete-row) log returns;
    when fewer than :data:`MIN_ROWS` such sums exist, the 1-bar P&L scaled by √h instead.
    VaR = −q, q the (1 − α) quantile of the scenario P&L with numpy's ``method="lower"`` (the
    lower order statistic: the conservative choice, it never interpolates toward a gain);
    ES = −mean of the P&L at or below q.  Contributions: each symbol's average loss over those
    tail scenarios (the Euler allocation of the historical ES), rescaled to sum to VaR.
    """
    _check_horizon_alpha(horizon, alpha)
    x = _complete_rows(returns)
    w = _vector("exposures", exposures, x.shape[1])
    growth, scale = _scenarios(x, horizon)
    return _historical_from(growth, scale, w, horizon, alpha)


def _scenarios(x: FloatArray, horizon: int) -> tuple[FloatArray, float]:
    """The historical scenarios' simple returns (overlapping h-bar sums of ``x``) and their √h scale."""
    scale = 1.0
    if horizon > 1:
        if x.shape[0] - horizon + 1 >= MIN_ROWS:
            x = np.lib.stride_tricks.sliding_window_view(x, horizon, axis=0).sum(axis=-1)
        else:
            scale = math.sqrt(horizon)
    return np.expm1(x), scale


def _historical_from(growth: FloatArray, scale: float, w: FloatArray, horizon: int, alpha: float) -> VarEstimate:
    component_pnl = growth * w * scale
    pnl = component_pnl.sum(axis=1)
    q = float(np.quantile(pnl, 1.0 - alpha, method="lower"))
    tail = pnl <= q
    es_raw = -float(pnl[tail].mean())
    var_raw = -q
    if var_raw > 0.0:
        contributions = -component_pnl[tail].mean(axis=0) * (var_raw / es_raw)
    else:
        contributions = np.zeros(w.size)
    return _estimate("historical", horizon, alpha, var_raw, es_raw, contributions)


def cornish_fisher_var(exposures: npt.ArrayLike, returns: npt.ArrayLike, horizon: int = 1,
                       alpha: float = 0.99) -> VarEstimate:
    """Cornish-Fisher (modified) VaR/ES from the moments of the book's 1-bar P&L.

    Moments are population moments (ddof=0) of the window's 1-bar P&L, aggregated over h iid
    bars: mean × h, st.dev. × √h, skewness / √h, excess kurtosis / h.  The quantile is
    q(p) = mean + sd·z_cf(Φ⁻¹(p)) with z_cf = z + (z²−1)S/6 + (z³−3z)K/24 − (2z³−5z)S²/36;
    VaR = −q(1 − α), ES = −average of q over :data:`ES_GRID` midpoints of (0, 1 − α).

    Guard: for extreme (S, K) the expansion is not monotone in z, so VaR and ES lose meaning.
    (S, K) are then shrunk toward (0, 0) along a ray, by the largest factor in [0, 1] that keeps
    z_cf non-decreasing on the tail interval the estimate uses; the result is always finite.
    Contributions: the exact Euler gradient of the CF VaR through the P&L co-moments, with the
    shrink factor held fixed (S and K are scale-free, so the terms still sum to VaR).
    """
    _check_horizon_alpha(horizon, alpha)
    x = np.expm1(_complete_rows(returns))
    return _cornish_fisher_from(x, _vector("exposures", exposures, x.shape[1]), horizon, alpha)


def _cornish_fisher_from(x: FloatArray, w: FloatArray, horizon: int, alpha: float) -> VarEstimate:
    # Work on w / max|w| so the third and fourth moments neither underflow nor overflow;
    # VaR, ES and the contributions are positively homogeneous, so scale them back after.
    size = float(np.abs(w).max(initial=0.0))
    if size == 0.0:
        return _estimate("cornish_fisher", horizon, alpha, 0.0, 0.0, np.zeros(w.size))
    var_raw, es_raw, contributions = _cornish_fisher_unit(x, w / size, horizon, alpha)
    return _estimate("cornish_fisher", horizon, alpha, size * var_raw, size * es_raw,
                     size * contributions)


def _cornish_fisher_unit(x: FloatArray, w: FloatArray, horizon: int,
                         alpha: float) -> tuple[float, float, FloatArray]:
    """Raw CF VaR, ES and Euler contributions of book ``w`` on 1-bar simple returns ``x``."""
    pnl = x @ w
    mean = float(pnl.mean())
    dev = pnl - mean
    m2 = float(np.mean(dev**2))
    sd = math.sqrt(m2)
    root_h = math.sqrt(horizon)
    tail_z = _tail_grid(alpha)
    z = _NORMAL.inv_cdf(1.0 - alpha)

    if sd <= 1e-12 * float(np.abs(pnl).max(initial=0.0)):
        var_raw = es_raw = -mean * horizon
        grad = -horizon * x.mean(axis=0)
    else:
        m3, m4 = float(np.mean(dev**3)), float(np.mean(dev**4))
        skew, kurt = m3 / m2**1.5, m4 / m2**2 - 3.0
        shrink = _monotone_shrink(skew / root_h, kurt / horizon, float(tail_z[0]), z)
        s_h, k_h = shrink * skew / root_h, shrink * kurt / horizon
        z_cf = float(_cf(np.array([z]), s_h, k_h)[0])
        var_raw = -(mean * horizon + sd * root_h * z_cf)
        es_raw = -(mean * horizon + sd * root_h * float(_cf(tail_z, s_h, k_h).mean()))
        # Gradients of the co-moments with respect to w (d is the de-meaned component matrix).
        d = x - x.mean(axis=0)
        g_m2 = 2.0 * (d.T @ dev) / len(dev)
        g_m3 = 3.0 * (d.T @ dev**2) / len(dev)
        g_m4 = 4.0 * (d.T @ dev**3) / len(dev)
        g_sd = g_m2 / (2.0 * sd)
        g_skew = g_m3 / m2**1.5 - 1.5 * m3 * g_m2 / m2**2.5
        g_kurt = g_m4 / m2**2 - 2.0 * m4 * g_m2 / m2**3
        dz_ds = (z * z - 1.0) / 6.0 - (2.0 * z**3 - 5.0 * z) * s_h / 18.0
        dz_dk = (z**3 - 3.0 * z) / 24.0
        grad = -(horizon * x.mean(axis=0) + root_h * z_cf * g_sd
                 + sd * root_h * (dz_ds * shrink / root_h * g_skew
                                  + dz_dk * shrink / horizon * g_kurt))
    contributions = w * grad if var_raw > 0.0 else np.zeros(w.size)
    return var_raw, es_raw, contributions


def portfolio_risk(exposures: npt.ArrayLike, returns: npt.ArrayLike, mu: npt.ArrayLike,
                   sigma: npt.ArrayLike, horizons: Sequence[int] = (1, 24),
                   alpha: float = 0.99) -> list[VarEstimate]:
    """All three methods at each horizon, in order (model, historical, cornish_fisher) per horizon."""
    return WindowRisk(returns, mu, sigma, horizons, alpha)(exposures)


class WindowRisk:
    """:func:`portfolio_risk` of many books over one window: what depends only on the window is done once.

    Deleveraging measures a dozen trial books per bar against the same returns; the complete rows, the
    correlation matrix (an eigendecomposition) and the scenario matrices do not change between them.
    Each estimate is computed by the same operations on the same arrays as the one-book functions
    above, so the numbers are identical, only not recomputed.
    """

    def __init__(self, returns: npt.ArrayLike, mu: npt.ArrayLike, sigma: npt.ArrayLike,
                 horizons: Sequence[int] = (1, 24), alpha: float = 0.99) -> None:
        self.x = _complete_rows(returns)
        self.corr = correlation(self.x)
        self.mu, self.sigma = mu, sigma
        self.horizons, self.alpha = tuple(horizons), alpha
        self._hist: dict[int, tuple[FloatArray, float]] = {}
        self._cf_x: FloatArray | None = None

    def __call__(self, exposures: npt.ArrayLike) -> list[VarEstimate]:
        out: list[VarEstimate] = []
        for h in self.horizons:
            out.append(model_var(exposures, self.mu, self.sigma, self.corr, h, self.alpha))
            out.append(self._historical(exposures, h))
            out.append(self._cornish_fisher(exposures, h))
        return out

    def _historical(self, exposures: npt.ArrayLike, horizon: int) -> VarEstimate:
        """:func:`historical_var` with the scenarios' simple returns kept between books."""
        _check_horizon_alpha(horizon, self.alpha)
        if horizon not in self._hist:
            self._hist[horizon] = _scenarios(self.x, horizon)
        growth, scale = self._hist[horizon]
        return _historical_from(growth, scale, _vector("exposures", exposures, self.x.shape[1]), horizon,
                                self.alpha)

    def _cornish_fisher(self, exposures: npt.ArrayLike, horizon: int) -> VarEstimate:
        """:func:`cornish_fisher_var` with the window's simple returns kept between books."""
        _check_horizon_alpha(horizon, self.alpha)
        if self._cf_x is None:
            self._cf_x = np.expm1(self.x)
        return _cornish_fisher_from(self._cf_x, _vector("exposures", exposures, self.x.shape[1]), horizon,
                                    self.alpha)


def _cf(z: FloatArray, skew: float, kurt: float) -> FloatArray:
    """The Cornish-Fisher adjusted standard quantile."""
    return (z + (z * z - 1.0) * skew / 6.0 + (z**3 - 3.0 * z) * kurt / 24.0
            - (2.0 * z**3 - 5.0 * z) * skew * skew / 36.0)


def _cf_is_monotone(skew: float, kurt: float, z_lo: float, z_hi: float) -> bool:
    """Whether dz_cf/dz ≥ 0 on [z_lo, z_hi] (the derivative is a quadratic in z)."""
    a = kurt / 8.0 - skew * skew / 6.0
    b = skew / 3.0
    c = 1.0 - kurt / 8.0 + 5.0 * skew * skew / 36.0
    points = [z_lo, z_hi]
    if a != 0.0 and z_lo < -b / (2.0 * a) < z_hi:
        points.append(-b / (2.0 * a))
    return all(a * p * p + b * p + c >= 0.0 for p in points)


def _monotone_shrink(skew: float, kurt: float, z_lo: float, z_hi: float) -> float:
    """The largest λ in [0, 1] (to 1e-9, by bisection) with z_cf(λS, λK) monotone on [z_lo, z_hi]."""
    if _cf_is_monotone(skew, kurt, z_lo, z_hi):
        return 1.0
    lo, hi = 0.0, 1.0  # λ = 0 is the Gaussian: always monotone
    while hi - lo > 1e-9:
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _cf_is_monotone(mid * skew, mid * kurt, z_lo, z_hi) else (lo, mid)
    return lo


@lru_cache(maxsize=8)
def _tail_grid(alpha: float) -> FloatArray:
    """Standard-normal quantiles at the ES_GRID midpoints of (0, 1 − α), ascending."""
    p = (np.arange(ES_GRID) + 0.5) / ES_GRID * (1.0 - alpha)
    grid = np.array([_NORMAL.inv_cdf(float(v)) for v in p])
    grid.setflags(write=False)
    return grid


def _nearest_psd_correlation(corr: FloatArray) -> FloatArray:
    """``corr`` itself when PSD; otherwise negative eigenvalues clipped to 0, rescaled to unit diagonal."""
    eigval, eigvec = np.linalg.eigh(corr)
    if eigval.min() >= -1e-12:
        return corr
    fixed = (eigvec * np.clip(eigval, 0.0, None)) @ eigvec.T
    d = np.sqrt(np.clip(np.diag(fixed), 1e-300, None))
    fixed = fixed / np.outer(d, d)
    fixed = (fixed + fixed.T) / 2.0
    np.fill_diagonal(fixed, 1.0)
    return fixed


def _complete_rows(returns: npt.ArrayLike, min_rows: int = MIN_ROWS) -> FloatArray:
    """The (T, n) window without the rows holding a NaN; too few rows is a ValueError."""
    x = np.asarray(returns, dtype=float)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"returns must be a (T, n) array with n >= 1, got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("returns hold an infinite value")
    complete = x[~np.isnan(x).any(axis=1)]
    if complete.shape[0] < min_rows:
        raise ValueError(
            f"only {complete.shape[0]} of {x.shape[0]} bars have a return for every symbol; "
            f"at least {min_rows} are needed to estimate risk")
    return complete


def _vector(name: str, values: npt.ArrayLike, n: int | None = None) -> FloatArray:
    """``values`` as a finite 1-D float array, of length ``n`` when given."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or (n is not None and v.size != n):
        want = f"({n},)" if n is not None else "1-D"
        raise ValueError(f"{name} must have shape {want}, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite")
    return v


def _check_horizon_alpha(horizon: int, alpha: float) -> None:
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a whole number of bars >= 1, got {horizon!r}")
    if not 0.5 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0.5, 1), got {alpha!r}")


def _estimate(method: str, horizon: int, alpha: float, var_raw: float, es_raw: float,
              contributions: FloatArray) -> VarEstimate:
    """Floor VaR and ES at 0 (ES ≥ VaR) and freeze the contributions."""
    var = max(0.0, var_raw)
    es = max(var, es_raw)
    c = np.array(contributions, dtype=float) if var > 0.0 else np.zeros(len(contributions))
    c.setflags(write=False)
    return VarEstimate(method, int(horizon), float(alpha), var, es, c)
