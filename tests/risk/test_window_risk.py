"""WindowRisk (the many-books fast path) against the one-book reference functions: bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.var import (
    MIN_ROWS,
    VarEstimate,
    WindowRisk,
    _nearest_psd_correlation,
    cornish_fisher_var,
    correlation,
    historical_var,
    model_var,
    portfolio_risk,
)


def fat_tailed(seed: int, t: int, n: int, scale: float, df: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_t(df, size=(t, 1))
    own = rng.standard_t(df, size=(t, n))
    return scale * (0.6 * common + 0.8 * own) / math.sqrt(df / (df - 2))


def reference(w: np.ndarray, r: np.ndarray, mu: np.ndarray, sigma: np.ndarray, horizons: tuple[int, ...],
              alpha: float) -> list[VarEstimate]:
    """The one-book functions, each on its own: what WindowRisk must reproduce exactly."""
    corr = correlation(r)
    out = []
    for h in horizons:
        out += [model_var(w, mu, sigma, corr, h, alpha), historical_var(w, r, h, alpha),
                cornish_fisher_var(w, r, h, alpha)]
    return out


def assert_identical(got: list[VarEstimate], want: list[VarEstimate]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert (a.method, a.horizon, a.alpha) == (b.method, b.horizon, b.alpha)
        # repr tells -0.0 from 0.0 and compares NaN; tobytes is the bit pattern of every element.
        assert repr(a.var) == repr(b.var) and repr(a.es) == repr(b.es), (a, b)
        assert a.contributions.dtype == b.contributions.dtype and a.contributions.shape == b.contributions.shape
        assert a.contributions.tobytes() == b.contributions.tobytes(), (a.method, a.horizon)
        assert not a.contributions.flags.writeable


windows = st.builds(
    lambda seed, t, n, df, scale, dead, twin, hole: _window(seed, t, n, df, scale, dead, twin, hole),
    st.integers(0, 2**32 - 1), st.integers(MIN_ROWS + 5, 160), st.integers(1, 12), st.floats(2.5, 30.0),
    st.floats(1e-4, 0.05), st.booleans(), st.booleans(), st.booleans(),
)


def _window(seed: int, t: int, n: int, df: float, scale: float, dead: bool, twin: bool, hole: bool) -> np.ndarray:
    r = fat_tailed(seed, t, n, scale, df)
    if dead:
        r[:, seed % n] = 0.0           # a zero-variance symbol
    if twin and n > 1:
        r[:, -1] = r[:, 0]             # a duplicate symbol: a singular correlation
    if hole:
        r[seed % t, (seed // 7) % n] = np.nan
    return r


@settings(max_examples=120, deadline=None)
@given(windows, st.integers(0, 2**32 - 1), st.sampled_from([0.9, 0.95, 0.99, 0.999]),
       st.sampled_from([(1, 24), (1,), (24, 1), (2, 5, 100)]), st.integers(1, 4))
def test_window_risk_is_bit_identical_to_the_one_book_functions(r: np.ndarray, seed: int, alpha: float,
                                                               horizons: tuple[int, ...], books: int) -> None:
    n = r.shape[1]
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 1e-3, n)
    sigma = np.abs(rng.normal(0.01, 0.005, n))
    window = WindowRisk(r, mu, sigma, horizons, alpha)
    assert window.corr.tobytes() == correlation(r).tobytes()
    for k in range(books):   # several books on one window: nothing cached may leak between them
        w = rng.normal(0.0, 10.0 ** rng.uniform(-3, 6), n) * (rng.random(n) < 0.7)
        if k == 1:
            w = np.zeros(n)     # the empty book's shortcut
        assert_identical(window(w), reference(w, r, mu, sigma, horizons, alpha))
    assert_identical(portfolio_risk(w, r, mu, sigma, horizons, alpha), reference(w, r, mu, sigma, horizons, alpha))


def test_window_risk_is_bit_identical_on_a_100_symbol_window() -> None:
    r = fat_tailed(3, 127, 100, 0.01, 4.0)
    rng = np.random.default_rng(4)
    mu, sigma = rng.normal(0.0, 1e-3, 100), r.std(axis=0)
    window = WindowRisk(r, mu, sigma)
    for _ in range(3):
        w = rng.normal(0.0, 1000.0, 100) * (rng.random(100) < 0.5)
        assert_identical(window(w), reference(w, r, mu, sigma, (1, 24), 0.99))


def eigh_only(corr: np.ndarray) -> np.ndarray:
    """The PSD repair as it was before the Cholesky pre-check: the eigendecomposition decides."""
    eigval, eigvec = np.linalg.eigh(corr)
    if eigval.min() >= -1e-12:
        return corr
    fixed = (eigvec * np.clip(eigval, 0.0, None)) @ eigvec.T
    d = np.sqrt(np.clip(np.diag(fixed), 1e-300, None))
    fixed = fixed / np.outer(d, d)
    fixed = (fixed + fixed.T) / 2.0
    np.fill_diagonal(fixed, 1.0)
    return fixed


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60), st.integers(2, 60), st.booleans())
def test_psd_repair_matches_the_eigendecomposition(seed: int, t: int, n: int, perturb: bool) -> None:
    rng = np.random.default_rng(seed)
    c = np.corrcoef(rng.normal(size=(t, n)), rowvar=False)   # singular when t <= n
    if perturb:   # an indefinite "correlation": off-diagonal noise
        e = rng.normal(0.0, 0.3, (n, n))
        c = np.clip(c + (e + e.T) / 2.0, -1.0, 1.0)
        np.fill_diagonal(c, 1.0)
    assert _nearest_psd_correlation(c).tobytes() == eigh_only(c).tobytes()


def test_window_risk_raises_what_the_one_book_functions_raise() -> None:
    r = fat_tailed(8, 60, 3, 0.01, 4.0)
    ok = ([1.0, 1.0, 1.0], [0.0] * 3, [0.01] * 3)
    for (w, mu, sigma), horizons, message in [
            (([1.0, 1.0], [0.0] * 3, [0.01] * 3), (1,), "mu must have shape"),
            (ok, (0,), "horizon"), (ok, (1, 0), "horizon"),
            (([1.0] * 3, [0.0] * 3, [-0.01] * 3), (1,), "sigma must be non-negative"),
            (([math.nan] * 3, [0.0] * 3, [0.01] * 3), (1,), "exposures must be finite"),
            (([1.0] * 2, [0.0] * 2, [0.01] * 2), (1,), r"corr must be a finite \(2, 2\) matrix")]:
        with pytest.raises(ValueError, match=message):
            WindowRisk(r, mu, sigma, horizons)(w)
    with pytest.raises(ValueError, match="alpha"):
        WindowRisk(r, *ok[1:], alpha=1.0)(ok[0])
    assert WindowRisk(r, *ok[1:], horizons=())(ok[0]) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, 3.5]),
                          st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0])), min_size=1, max_size=30))
def test_deleverage_candidates_keep_their_order(pairs: list[tuple[float, float]]) -> None:
    from risk.deleverage import _candidates

    w = np.array([p[0] for p in pairs])
    contrib = np.array([p[1] for p in pairs])
    held = [i for i in range(len(w)) if contrib[i] > 0 and w[i] != 0]
    assert _candidates(w, contrib) == sorted(held, key=lambda i: (-contrib[i], -abs(w[i]), i))
