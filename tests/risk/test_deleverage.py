"""VaR deleveraging: cuts toward zero only, stops within budget, never raises VaR on a step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.deleverage import DeleverageResult, deleverage, scale_factors
from risk.var import VarEstimate, cornish_fisher_var, correlation, historical_var, model_var


@dataclass(frozen=True)
class FixedRisk:
    """A risk estimate with a given VaR and contributions (any object with the two fields works)."""

    var: float
    contributions: np.ndarray


def returns(seed: int, t: int = 127, n: int = 3, df: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_t(df, size=(t, 1))
    return 0.01 * (0.6 * common + 0.8 * rng.standard_t(df, size=(t, n))) / math.sqrt(df / (df - 2))


def binding(r: np.ndarray) -> Callable[[np.ndarray], VarEstimate]:
    """The max over the three methods at 1 and 24 bars, the way the engine binds them."""
    mu, sigma, corr = r.mean(axis=0), r.std(axis=0), correlation(r)

    def risk(w: np.ndarray) -> VarEstimate:
        ests = [f(w, h) for h in (1, 24) for f in (
            lambda w, h: model_var(w, mu, sigma, corr, h), lambda w, h: historical_var(w, r, h),
            lambda w, h: cornish_fisher_var(w, r, h))]
        return max(ests, key=lambda e: e.var)
    return risk


def assert_cuts_toward_zero(initial: np.ndarray, result: DeleverageResult) -> None:
    w = initial.copy()
    for s in result.steps:
        assert s.exposure_before == w[s.symbol_index]
        assert abs(s.exposure_after) <= abs(s.exposure_before)
        assert s.exposure_after == 0.0 or np.sign(s.exposure_after) == np.sign(s.exposure_before)
        assert s.var_after <= s.var_before
        w[s.symbol_index] = s.exposure_after
    assert np.array_equal(w, result.exposures)
    assert np.all(np.abs(result.exposures) <= np.abs(initial))
    assert np.all(result.exposures * initial >= 0)


def test_single_position_is_cut_by_a_quarter_until_within_budget() -> None:
    r = returns(0, n=1)
    w0 = np.array([10_000.0])
    risk = lambda w: historical_var(w, r)  # noqa: E731 - a one-line risk measure reads best inline
    start = risk(w0).var
    result = deleverage(w0, risk, budget=0.5 * start)
    assert [s.exposure_after for s in result.steps] == pytest.approx([7500.0, 5625.0, 4218.75])
    assert result.within_budget and result.var <= 0.5 * start
    assert result.var == pytest.approx(0.421875 * start)
    assert scale_factors(w0, result.exposures).tolist() == pytest.approx([0.421875])


def test_book_already_within_budget_is_untouched() -> None:
    r = returns(1)
    w0 = np.array([100.0, -50.0, 20.0])
    result = deleverage(w0, lambda w: historical_var(w, r), budget=1e9)
    assert result.steps == () and result.within_budget and np.array_equal(result.exposures, w0)


def test_largest_contributor_is_cut_first_with_ties_by_size_then_index() -> None:
    calls: list[np.ndarray] = []

    def risk(w: np.ndarray) -> FixedRisk:
        calls.append(w)
        return FixedRisk(float(abs(w).sum()), np.array([1.0, 1.0, 1.0, 0.5]) * (w != 0))

    result = deleverage([100.0, -200.0, 200.0, 500.0], risk, budget=900.0, max_steps=1)
    assert result.steps[0].symbol_index == 1  # tie on contribution, tie on |w|: lowest index
    assert result.steps[0].exposure_after == -150.0
    assert not result.within_budget and len(calls) == 2


def test_stops_when_no_symbol_has_a_positive_contribution() -> None:
    result = deleverage([100.0, -100.0], lambda w: FixedRisk(50.0, np.array([-10.0, 0.0])), budget=1.0)
    assert result.steps == () and not result.within_budget and result.var == 50.0


def test_max_steps_bounds_the_work() -> None:
    result = deleverage([1e6], lambda w: FixedRisk(abs(w[0]), np.abs(w)), budget=1.0, max_steps=5)
    assert len(result.steps) == 5 and not result.within_budget
    assert result.exposures[0] == pytest.approx(1e6 * 0.75**5)


def test_tiny_exposure_is_set_to_exactly_zero() -> None:
    def risk(w: np.ndarray) -> FixedRisk:
        return FixedRisk(1.0, np.array([0.0, 1.0])) if w[1] else FixedRisk(1.0, np.zeros(2))

    result = deleverage([1.0, 1e-12], risk, budget=0.5)  # 1e-12 · 0.75 < 1e-9 × gross 1.0
    assert result.exposures.tolist() == [1.0, 0.0] and result.steps[0].exposure_after == 0.0


def test_a_step_that_would_raise_var_on_a_hedged_book_is_backtracked() -> None:
    # Perfectly correlated pair, long 1000 / short 900: net 100.  A 25% cut of the long would
    # leave net −150 (VaR up by half); half that cut (12.5%) leaves net −25, VaR down.
    corr = np.ones((2, 2))
    risk = lambda w: model_var(w, [0.0, 0.0], [0.01, 0.01], corr)  # noqa: E731
    w0 = np.array([1000.0, -900.0])
    result = deleverage(w0, risk, budget=0.9 * risk(w0).var, max_steps=1)
    step = result.steps[0]
    assert step.symbol_index == 0 and step.exposure_after == pytest.approx(875.0)
    assert step.var_after < step.var_before and result.within_budget


def test_scale_factors_are_one_where_nothing_was_held() -> None:
    assert scale_factors([0.0, 200.0, -40.0], [0.0, 50.0, -10.0]).tolist() == [1.0, 0.25, 0.25]
    with pytest.raises(ValueError, match="shape"):
        scale_factors([1.0], [1.0, 2.0])


def test_invalid_arguments_are_rejected() -> None:
    risk = lambda w: FixedRisk(1.0, np.zeros(1))  # noqa: E731
    for kwargs in ({"budget": 0.0}, {"budget": math.nan}, {"budget": 1.0, "step": 0.0},
                   {"budget": 1.0, "max_steps": -1}):
        with pytest.raises(ValueError):
            deleverage([1.0], risk, **kwargs)
    with pytest.raises(ValueError, match="contributions"):
        deleverage([1.0, 2.0], risk, budget=0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1),
       st.lists(st.floats(-1e6, 1e6) | st.just(0.0), min_size=3, max_size=3),
       st.floats(0.01, 1.5), st.sampled_from([0.1, 0.25, 0.5, 1.0]),
       st.sampled_from(["model", "historical", "cornish_fisher", "binding"]))
def test_deleveraging_never_grows_or_flips_an_exposure(seed: int, raw: list[float], fraction: float,
                                                       step: float, method: str) -> None:
    r = returns(seed)
    w0 = np.array(raw)
    mu, sigma, corr = r.mean(axis=0), r.std(axis=0), correlation(r)
    risk = {
        "model": lambda w: model_var(w, mu, sigma, corr, 24),
        "historical": lambda w: historical_var(w, r, 24),
        "cornish_fisher": lambda w: cornish_fisher_var(w, r, 1),
        "binding": binding(r),
    }[method]
    start = risk(w0).var
    result = deleverage(w0, risk, budget=max(fraction * start, 1e-6), step=step, max_steps=60)
    assert_cuts_toward_zero(w0, result)
    assert result.within_budget == (result.var <= max(fraction * start, 1e-6))
    if result.within_budget:
        assert risk(result.exposures).var <= max(fraction * start, 1e-6)
    assert result.var <= start
