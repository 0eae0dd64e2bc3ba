"""Demonstrated skill, calibration and the skill monitor: the estimates behind what the decisions trust."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.calibration import GAUSSIAN_RATIO, Calibration, calibrated, nll, shape_for
from strategies.monitor import MonitorState, monitor_step
from strategies.skill import SkillStats, decay_for, effective_scale, skill_stats


def _regress(mu: np.ndarray, r: np.ndarray, halflife: float) -> SkillStats:
    stats = SkillStats()
    d = decay_for(halflife)
    for m, x in zip(mu.tolist(), r.tolist()):
        stats = stats.updated(m, x, d)
    return stats


def test_the_regression_recovers_a_planted_slope_and_its_standard_error() -> None:
    rng = np.random.default_rng(1)
    mu = rng.normal(0, 0.002, 20_000)
    r = 0.7 * mu + rng.normal(0, 0.01, mu.size)
    beta, se = skill_stats(mu.tolist(), r.tolist()).beta()
    # Independent check: ordinary least squares through the origin with numpy.
    ols = float(mu @ r / (mu @ mu))
    ols_se = math.sqrt(float(np.sum((r - ols * mu) ** 2)) / mu.size / float(mu @ mu))
    assert beta == pytest.approx(ols, rel=1e-9) and se == pytest.approx(ols_se, rel=1e-6)
    assert abs(beta - 0.7) < 3 * se


def test_noise_shows_no_skill_and_a_real_edge_does() -> None:
    rng = np.random.default_rng(2)
    mu = rng.normal(0, 0.001, 3000)
    noise = rng.normal(0, 0.01, mu.size)
    b_none, _, _ = effective_scale(_regress(mu, noise, 720), z=2.0, min_bars=168, max_scale=2.0)
    b_edge, beta, se = effective_scale(_regress(mu, 1.0 * mu * 8 + noise, 720), z=2.0, min_bars=168, max_scale=2.0)
    assert b_none == 0.0
    assert 0 < b_edge <= 2.0 and b_edge == pytest.approx(min(beta - 2 * se, 2.0))


def test_no_skill_counts_before_min_bars_and_wrong_way_skill_is_zero_not_negative() -> None:
    mu = np.full(50, 0.001)
    stats = _regress(mu, 3 * mu, 720)
    assert effective_scale(stats, 2.0, 168, 2.0)[0] == 0.0
    wrong = _regress(np.tile([0.001, -0.001], 500), np.tile([-0.003, 0.003], 500), 720)
    b, beta, _ = effective_scale(wrong, 2.0, 168, 2.0)
    assert beta < 0 and b == 0.0


@settings(max_examples=200, deadline=None)
@given(beta=st.floats(-3, 3), se=st.floats(0.0, 2.0), extra=st.floats(0.0, 3.0), z=st.floats(0.0, 4.0))
def test_more_demonstrated_skill_never_lowers_the_scale(beta: float, se: float, extra: float, z: float) -> None:
    """The scale is monotone in the slope at a given standard error (and in the standard error downward)."""
    lo = max(min(beta - z * se, 2.0), 0.0)
    hi = max(min(beta + extra - z * se, 2.0), 0.0)
    assert hi >= lo


def test_the_seed_is_scaled_to_its_cap() -> None:
    stats = skill_stats([0.001] * 2000, [0.002] * 2000)
    capped = stats.scaled(720 / stats.sw)
    assert capped.sw == pytest.approx(720) and capped.beta()[0] == pytest.approx(stats.beta()[0])


def test_quantile_trackers_converge_to_nominal_coverage_on_fat_tails() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_t(3, 40_000) * 0.6        # an over-dispersed sigma and fat tails, like hourly crypto
    c = Calibration()
    d = decay_for(720)
    in68 = in95 = 0
    for i, x in enumerate(z.tolist()):
        if i >= 5000:
            in68 += abs(x) <= c.q68
            in95 += abs(x) <= c.q95
        c = c.updated(x, 0.02, d)
    n = z.size - 5000
    assert abs(in68 / n - 0.68) < 0.01 and abs(in95 / n - 0.95) < 0.01
    # The shape says "fatter than a Gaussian": a t with few degrees of freedom.
    cal = calibrated(1.0, c)
    assert 2 < cal.nu < 8


def test_the_t_shape_reproduces_both_quantiles_and_its_nll_beats_a_gaussian_on_t_data() -> None:
    from scipy.stats import t as student_t

    nu, q84 = shape_for(student_t.ppf(0.975, 4) / student_t.ppf(0.84, 4))
    assert nu == pytest.approx(4, rel=0.02) and q84 == pytest.approx(student_t.ppf(0.84, 4), rel=1e-3)
    assert shape_for(GAUSSIAN_RATIO * 0.99)[0] == math.inf
    rng = np.random.default_rng(4)
    y = rng.standard_t(4, 20_000) * 0.01
    sd = 0.01 * math.sqrt(2.0)                  # the std of a t(4) scaled by 0.01
    z68 = student_t.ppf(0.84, 4) * 0.01 / sd
    mu = np.zeros_like(y)
    sigma = np.full_like(y, sd)
    t_nll = nll(mu, sigma, y, np.full_like(y, z68), np.full_like(y, 4.0)).mean()
    g_nll = nll(mu, sigma, y).mean()
    assert t_nll < g_nll
    # Independent check of the density against scipy.
    expect = -student_t.logpdf(y / 0.01, 4) + math.log(0.01)
    assert nll(mu, sigma, y, np.full_like(y, z68), np.full_like(y, 4.0)) == pytest.approx(expect, rel=1e-6)


def test_the_monitor_fires_on_a_model_that_turned_bad_and_not_on_one_that_did_not() -> None:
    rng = np.random.default_rng(5)
    state = MonitorState()
    fired = []
    for i in range(3000):
        excess = rng.normal(-0.01 if i < 1500 else 0.15, 0.3)   # the model breaks at bar 1500
        step = monitor_step(state, excess, rng.random() < 0.05, 0.02, 20.0, 0.10, 8.0)
        state = step.state
        if step.fired:
            fired.append(i)
    assert fired and fired[0] > 1500 and fired[0] < 1500 + 400
    assert "NLL CUSUM" in monitor_step(MonitorState(19.9, 0), 1.0, False, 0.02, 20.0, 0.1, 8.0).fired


def test_the_pit_cusum_fires_on_a_burst_of_tail_outcomes() -> None:
    state = MonitorState()
    for _ in range(20):
        step = monitor_step(state, 0.0, True, 0.02, 20.0, 0.10, 8.0)
        state = step.state
        if step.fired:
            break
    assert "PIT CUSUM" in step.fired and state == MonitorState()
