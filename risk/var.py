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
    return _correlation_of(_complete_rows(returns, min_rows=2))


def _correlation_of(x: FloatArray) -> FloatArray:
    """:func:`correlation` of rows already complete."""
    d = x - x.mean(axis=0)
    scale = np.sqrt((d * d).sum(axis=0))
    live = scale > 1e-12 * np.abs(x).max(axis=0)
    n = x.shape[1]
    if live.all():   # the same product, without the zero fill and the scatter
        z = d / scale
        corr = z.T @ z
    else:
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
    correlation matrix, the scenario matrices, the horizon covariances, the de-meaned simple returns and
    the validated μ and σ (read at the first call) do not change between them, and a book's P&L moments
    do not change between horizons.  Each estimate is computed by the same floating-point operations on
    the same values as the one-book functions above (the quantile is the same order statistic, selected
    by the same partition), so the numbers are identical, only not recomputed; errors are the same
    ``ValueError``, raised by the call that would raise it there.
    """

    def __init__(self, returns: npt.ArrayLike, mu: npt.ArrayLike, sigma: npt.ArrayLike,
                 horizons: Sequence[int] = (1, 24), alpha: float = 0.99) -> None:
        self.x = _complete_rows(returns)
        self._corr: FloatArray | None = None    # at first use: a flat book (most bars of most runs) needs none
        self.mu, self.sigma = mu, sigma
        self.horizons, self.alpha = tuple(horizons), alpha
        self._hist: dict[int, tuple[FloatArray, float]] = {}
        self._cf_x: FloatArray | None = None
        self._inputs: tuple[FloatArray, FloatArray] | None = None   # validated μ, σ
        self._model: dict[int, tuple[FloatArray, FloatArray]] = {}  # horizon: (h·μ, Σ_h)
        self._cf_window: tuple[FloatArray, FloatArray] | None = None  # column means, de-meaned

    @property
    def corr(self) -> FloatArray:
        """The window's correlation (:func:`correlation`), computed when first asked for.

        Rows of ``x`` are complete and finite, so the matrix is a finite (n, n) one; the check that
        :func:`model_var` makes of it is made here, raising the same ``ValueError`` in the same call."""
        if self._corr is None:
            corr = _correlation_of(self.x)
            n = self.x.shape[1]
            if corr.shape != (n, n) or not np.isfinite(corr).all():
                raise ValueError(f"corr must be a finite ({n}, {n}) matrix, got shape {corr.shape}")
            self._corr = corr
        return self._corr

    def __call__(self, exposures: npt.ArrayLike) -> list[VarEstimate]:
        n = self.x.shape[1]
        if not self.horizons:
            return []
        alpha = self.alpha
        _check_horizon_alpha(self.horizons[0], alpha)
        w = _vector("exposures", exposures)
        mu, sigma = self._validated(w.size)
        if w.size != n:   # what historical_var says of a book of another length
            raise ValueError(f"exposures must have shape ({n},), got {w.shape}")
        size = float(np.abs(w).max(initial=0.0))
        if size == 0.0:
            # An empty book: every method's VaR and ES floor to 0.0 (its raw numbers are ±0, or NaN
            # where a window value overflows, and max(0.0, ·) keeps 0.0) with zero contributions.
            empty: list[VarEstimate] = []
            for h in self.horizons:
                _check_horizon_alpha(h, alpha)
                empty += [_frozen(method, h, alpha, 0.0, 0.0, np.zeros(n))
                          for method in ("model", "historical", "cornish_fisher")]
            return empty
        unit = w / size
        moments = _BookMoments(self._cf_columns(), unit)
        out: list[VarEstimate] = []
        for h in self.horizons:
            _check_horizon_alpha(h, alpha)
            out.append(self._model_book(w, size, unit, mu, sigma, h))
            growth, scale = self._scenarios(h)
            out.append(_historical_fast(growth, scale, w, h, alpha))
            var_raw, es_raw, contributions = moments.at(h, alpha)
            out.append(_frozen("cornish_fisher", h, alpha, size * var_raw, size * es_raw, size * contributions))
        return out

    def _validated(self, n: int) -> tuple[FloatArray, FloatArray]:
        """μ and σ as :func:`model_var` checks them (once), and the correlation's shape."""
        if self._inputs is None or self._inputs[0].size != n:
            mu = _vector("mu", self.mu, n)
            sigma = _vector("sigma", self.sigma, n)
            if (sigma < 0).any():
                raise ValueError("sigma must be non-negative")
            shape = (self.x.shape[1],) * 2     # the correlation's; its values are checked when it is made
            if shape != (n, n):
                raise ValueError(f"corr must be a finite ({n}, {n}) matrix, got shape {shape}")
            self._inputs = (mu, sigma)
        return self._inputs

    def _model_book(self, w: FloatArray, size: float, unit: FloatArray, mu: FloatArray, sigma: FloatArray,
                    horizon: int) -> VarEstimate:
        """:func:`model_var` of a non-empty book, h·μ and the horizon's covariance kept between books."""
        if horizon not in self._model:
            s = sigma * math.sqrt(horizon)
            self._model[horizon] = (mu * horizon, self.corr * np.outer(s, s))
        m, cov = self._model[horizon]
        alpha = self.alpha
        cov_u = cov @ unit
        sigma_u = math.sqrt(max(float(unit @ cov_u), 0.0))
        sigma_p = size * sigma_u
        z, pdf_z = _model_z(alpha)
        mean_loss = -w * m
        var_raw = float(mean_loss.sum()) + z * sigma_p
        es_raw = float(mean_loss.sum()) + sigma_p * pdf_z / (1.0 - alpha)
        if var_raw <= 0.0:
            contributions = np.zeros(w.size)
        elif sigma_u > 0.0:
            contributions = mean_loss + z * w * cov_u / sigma_u
        else:
            contributions = mean_loss
        return _frozen("model", horizon, alpha, var_raw, es_raw, contributions)

    def _scenarios(self, horizon: int) -> tuple[FloatArray, float]:
        """The historical scenarios' simple returns, kept between books."""
        if horizon not in self._hist:
            self._hist[horizon] = _scenarios(self.x, horizon)
        return self._hist[horizon]

    def _cf_columns(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The window's 1-bar simple returns, their column means and the de-meaned matrix."""
        if self._cf_x is None:
            self._cf_x = self._scenarios(1)[0]   # np.expm1(self.x), the 1-bar scenarios
        if self._cf_window is None:
            x = self._cf_x
            self._cf_window = (x.mean(axis=0), x - x.mean(axis=0))
        return self._cf_x, *self._cf_window


class _BookMoments:
    """The horizon-free part of :func:`_cornish_fisher_unit` for one book ``w`` (max |w| = 1):
    the P&L moments and their gradients, each by the same operations as there."""

    __slots__ = ("xbar", "mean", "sd", "m2", "m3", "m4", "degenerate", "w", "g_sd", "g_skew", "g_kurt")

    def __init__(self, columns: tuple[FloatArray, FloatArray, FloatArray], w: FloatArray) -> None:
        x, self.xbar, d = columns
        self.w = w
        pnl = x @ w
        self.mean = mean = _mean(pnl)
        dev = pnl - mean
        dev2 = dev**2
        self.m2 = m2 = _mean(dev2)
        self.sd = sd = math.sqrt(m2)
        self.degenerate = sd <= 1e-12 * float(np.abs(pnl).max(initial=0.0))
        if self.degenerate:
            return
        dev3 = dev**3
        self.m3, self.m4 = m3, m4 = _mean(dev3), _mean(dev**4)
        g_m2 = 2.0 * (d.T @ dev) / len(dev)
        g_m3 = 3.0 * (d.T @ dev2) / len(dev)
        g_m4 = 4.0 * (d.T @ dev3) / len(dev)
        self.g_sd = g_m2 / (2.0 * sd)
        self.g_skew = g_m3 / m2**1.5 - 1.5 * m3 * g_m2 / m2**2.5
        self.g_kurt = g_m4 / m2**2 - 2.0 * m4 * g_m2 / m2**3

    def at(self, horizon: int, alpha: float) -> tuple[float, float, FloatArray]:
        """Raw CF VaR, ES and Euler contributions at ``horizon``: :func:`_cornish_fisher_unit`'s numbers."""
        mean, sd = self.mean, self.sd
        root_h = math.sqrt(horizon)
        if self.degenerate:
            var_raw = es_raw = -mean * horizon
            grad = -horizon * self.xbar
        else:
            m2 = self.m2
            tail_z, z, grid_terms, z_terms = _cf_terms(alpha)
            skew, kurt = self.m3 / m2**1.5, self.m4 / m2**2 - 3.0
            shrink = _monotone_shrink(skew / root_h, kurt / horizon, float(tail_z[0]), z)
            s_h, k_h = shrink * skew / root_h, shrink * kurt / horizon
            a, b, c = z_terms   # _cf(np.array([z]), s_h, k_h)[0] in float arithmetic (same rounding)
            z_cf = z + a * s_h / 6.0 + b * k_h / 24.0 - c * s_h * s_h / 36.0
            var_raw = -(mean * horizon + sd * root_h * z_cf)
            es_raw = -(mean * horizon + sd * root_h * _mean(_cf_from(tail_z, grid_terms, s_h, k_h)))
            dz_ds = (z * z - 1.0) / 6.0 - (2.0 * z**3 - 5.0 * z) * s_h / 18.0
            dz_dk = (z**3 - 3.0 * z) / 24.0
            grad = -(horizon * self.xbar + root_h * z_cf * self.g_sd
                     + sd * root_h * (dz_ds * shrink / root_h * self.g_skew
                                      + dz_dk * shrink / horizon * self.g_kurt))
        contributions = self.w * grad if var_raw > 0.0 else np.zeros(self.w.size)
        return var_raw, es_raw, contributions


def _historical_fast(growth: FloatArray, scale: float, w: FloatArray, horizon: int, alpha: float) -> VarEstimate:
    """:func:`_historical_from`, the quantile taken by the partition ``np.quantile`` does itself."""
    component_pnl = growth * w
    if scale != 1.0:   # x * 1.0 is x: the product is unchanged
        component_pnl = component_pnl * scale
    pnl = component_pnl.sum(axis=1)
    # np.quantile(pnl, 1 - alpha, method="lower"): index floor((n - 1)·q), partitioned at it and at
    # the last element (a NaN sorts last and makes the quantile NaN).
    k = int(np.floor((pnl.size - 1) * np.float64(1.0 - alpha)))
    part = np.partition(pnl, [k, -1])
    q = math.nan if math.isnan(part[-1]) else float(part[k])
    tail = pnl <= q
    es_raw = -_mean(pnl[tail])
    var_raw = -q
    if var_raw > 0.0:
        rows = component_pnl[tail]
        contributions = -(np.add.reduce(rows, axis=0) / rows.shape[0]) * (var_raw / es_raw)
    else:
        contributions = np.zeros(w.size)
    return _frozen("historical", horizon, alpha, var_raw, es_raw, contributions)


def _mean(a: FloatArray) -> float:
    """``float(a.mean())`` of a 1-D float array without the wrapper: the same sum, divided the same way."""
    return float(np.add.reduce(a) / a.size)


@lru_cache(maxsize=8)
def _model_z(alpha: float) -> tuple[float, float]:
    """Φ⁻¹(α) and φ(Φ⁻¹(α))."""
    z = _NORMAL.inv_cdf(alpha)
    return z, _NORMAL.pdf(z)


@lru_cache(maxsize=8)
def _cf_terms(alpha: float) -> tuple[FloatArray, float, tuple[FloatArray, FloatArray, FloatArray],
                                      tuple[float, float, float]]:
    """The tail grid, Φ⁻¹(1 − α) and the skew/kurtosis-free factors of :func:`_cf` on each."""
    tail_z = _tail_grid(alpha)
    z = _NORMAL.inv_cdf(1.0 - alpha)
    one = np.array([z])
    z_terms = tuple(float(t[0]) for t in _cf_factors(one))
    grid_terms = _cf_factors(tail_z)
    for t in grid_terms:
        t.setflags(write=False)
    return tail_z, z, grid_terms, z_terms  # type: ignore[return-value]


def _cf_factors(z: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """z² − 1, z³ − 3z and 2z³ − 5z, as :func:`_cf` computes them."""
    return z * z - 1.0, z**3 - 3.0 * z, 2.0 * z**3 - 5.0 * z


def _cf_from(z: FloatArray, terms: tuple[FloatArray, FloatArray, FloatArray], skew: float,
             kurt: float) -> FloatArray:
    """:func:`_cf` with its factors precomputed (the same operations, in the same order)."""
    a, b, c = terms
    return z + a * skew / 6.0 + b * kurt / 24.0 - c * skew * skew / 36.0


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
    """``corr`` itself when PSD; otherwise negative eigenvalues clipped to 0, rescaled to unit diagonal.

    PSD means: the smallest eigenvalue ``np.linalg.eigh`` finds is at least −1e-12.  A Cholesky
    factorisation of ``corr − δI`` is tried first (a fraction of an eigendecomposition's cost): when it
    succeeds, the exact smallest eigenvalue is at least δ − n(n+1)·ε (Cholesky's backward error on a
    unit-diagonal matrix) and eigh's is within about n·ε·‖corr‖ ≤ n²·ε of it, both far below δ, so the
    test above passes and ``corr`` is returned as it would be.  Otherwise (a singular or near-singular
    matrix: fewer rows than symbols, duplicate columns) the eigendecomposition decides, as before.
    """
    n = corr.shape[0]
    shifted = corr.copy()
    shifted.flat[::n + 1] -= 1e-9 + 1e-14 * n * n   # δ: ≥ 40 × the two rounding bounds together
    try:
        np.linalg.cholesky(shifted)
        return corr
    except np.linalg.LinAlgError:
        pass
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


def _frozen(method: str, horizon: int, alpha: float, var_raw: float, es_raw: float,
            contributions: FloatArray) -> VarEstimate:
    """:func:`_estimate` of a float array the caller owns: frozen in place, not copied."""
    var = max(0.0, var_raw)
    es = max(var, es_raw)
    c = contributions if var > 0.0 else np.zeros(len(contributions))
    c.setflags(write=False)
    return VarEstimate(method, int(horizon), float(alpha), var, es, c)
