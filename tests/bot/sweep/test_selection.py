"""The deflated Sharpe ratio and the PBO against hand-worked values and their known properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sweep.selection import (
    choose,
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    probabilistic_sharpe,
    sharpe,
)


def test_expected_max_sharpe_by_hand() -> None:
    """N = 100, V = 1: (1 − γ)·Φ⁻¹(0.99) + γ·Φ⁻¹(1 − 1/(100e)) = 0.42278 × 2.32635 + 0.57722 × 2.68021."""
    assert expected_max_sharpe(100, 1.0) == pytest.approx(0.4227843351 * 2.3263478740 + 0.5772156649 * 2.6802104450)
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.5306029, abs=1e-6)
    assert expected_max_sharpe(100, 0.25) == pytest.approx(2.5306029 / 2, abs=1e-6)   # scales with √V
    assert expected_max_sharpe(1, 1.0) == 0.0          # one trial: nothing to deflate
    assert expected_max_sharpe(50, 0.0) == 0.0


def test_probabilistic_sharpe_by_hand() -> None:
    """SR 0.1 against SR₀ 0.05 on T = 251 returns, skew −0.5, kurtosis 5:
    z = 0.05 × √250 / √(1 + 0.5 × 0.1 + (5 − 1)/4 × 0.01) = 0.790569 / 1.029563 = 0.767869; Φ(z) = 0.77872."""
    assert probabilistic_sharpe(0.1, 0.05, 251, -0.5, 5.0) == pytest.approx(0.778717, abs=1e-5)
    assert probabilistic_sharpe(0.0, 0.0, 100, 0.0, 3.0) == pytest.approx(0.5)


def test_deflated_sharpe_is_the_psr_against_the_expected_max() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 500)
    trials = rng.normal(0.0, 0.05, 40)
    d = deflated_sharpe(r, trials)
    assert d is not None
    from scipy import stats

    sr = float(np.mean(r) / np.std(r, ddof=1))
    sr0 = expected_max_sharpe(40, float(np.var(trials, ddof=1)))
    assert d.sharpe == pytest.approx(sr) and d.sr0 == pytest.approx(sr0) and d.trials == 40
    assert d.dsr == pytest.approx(probabilistic_sharpe(sr, sr0, 500, float(stats.skew(r)),
                                                       float(stats.kurtosis(r, fisher=False))))
    assert deflated_sharpe(np.zeros(100), trials) is None       # never traded: no Sharpe to deflate


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 200), st.floats(1e-4, 0.05))
def test_more_trials_deflate_more(seed: int, n: int, var: float) -> None:
    """With the same chosen series and trial variance, more trials never raise the DSR; one trial is the PSR."""
    r = np.random.default_rng(seed).normal(0.002, 0.01, 300)
    from scipy import stats

    sk, ku = float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))
    sr = float(sharpe(r))
    few = probabilistic_sharpe(sr, expected_max_sharpe(n, var), 300, sk, ku)
    many = probabilistic_sharpe(sr, expected_max_sharpe(n + 10, var), 300, sk, ku)
    assert many <= few
    assert probabilistic_sharpe(sr, expected_max_sharpe(1, var), 300, sk, ku) >= few


def test_pbo_by_hand_when_the_in_sample_winner_always_loses() -> None:
    """Two configurations, two blocks of two rows.  A: Sharpe +2.12 then −2.12; B: +0.71 in both.
    In-sample block 0: A wins, ranks 1 of 2 out of sample (ω̄ = 1/3, λ = ln ½ < 0).
    In-sample block 1: B wins, ranks 1 of 2 out of sample (A's +2.12 beats it).  PBO = 2/2."""
    m = np.array([[0.02, 0.00], [0.01, 0.01], [-0.01, 0.00], [-0.02, 0.01]])
    o = pbo(m, blocks=2)
    assert o.splits == 2 and o.pbo == 1.0
    assert o.logits == pytest.approx((math.log(0.5), math.log(0.5)))
    # Swap the halves of B so that it is best in both: its winner is always the out-of-sample best.
    m2 = np.array([[0.02, 0.04], [0.01, 0.05], [-0.01, 0.04], [-0.02, 0.05]])
    assert pbo(m2, blocks=2).pbo == 0.0


def test_pbo_of_pure_noise_grids_is_near_one_half() -> None:
    """Averaged over 20 noise grids (N = 10, T = 240, S = 8: 70 splits each): no configuration is better,
    so the in-sample winner lands above or below the out-of-sample median by chance."""
    values = [pbo(np.random.default_rng(s).normal(0, 0.01, (240, 10)), blocks=8).pbo for s in range(20)]
    assert 0.4 <= float(np.mean(values)) <= 0.6


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12))
def test_pbo_of_a_grid_with_a_dominant_configuration_is_near_zero(seed: int, n: int) -> None:
    m = np.random.default_rng(seed).normal(0, 0.01, (240, n))
    m[:, n // 2] += 0.01                                   # Sharpe ~1 per period: it wins in and out of sample
    assert pbo(m, blocks=8).pbo <= 0.05
    assert choose(m) == n // 2


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 100.0))
def test_pbo_does_not_depend_on_labels_or_units(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 0.01, (120, 6))
    perm = rng.permutation(6)
    base = pbo(m, blocks=6).pbo
    assert 0.0 <= base <= 1.0
    assert pbo(m[:, perm], blocks=6).pbo == base
    assert pbo(m * scale, blocks=6).pbo == base


def test_pbo_samples_splits_when_there_are_too_many() -> None:
    m = np.random.default_rng(0).normal(0, 0.01, (200, 4))
    o = pbo(m, blocks=16, max_splits=100)
    assert o.splits == 100 and len(o.logits) == 100


def test_pbo_refuses_what_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="even"):
        pbo(np.zeros((10, 3)), blocks=3)
    with pytest.raises(ValueError, match="two configurations"):
        pbo(np.zeros((10, 1)), blocks=2)


def test_a_grid_that_never_traded_has_no_pbo_and_no_dsr() -> None:
    import json

    from bot.sweep.report import analyse, format_analysis

    rows = [{"run_id": f"c{i}-f1-BTC", "config_id": f"c{i}", "params_json": json.dumps([["k", i]]), "fold": "f1",
             "test": 0, "ok": 1, "error": "", "sharpe": 0.0, "net_return": 0.0, "fills": 0,
             "days_json": json.dumps([d * 86_400_000 for d in range(40)]), "daily_json": json.dumps([0.0] * 40)}
            for i in range(3)]
    a = analyse(rows)
    assert a.chosen is not None and a.deflated is None and a.overfitting is None
    text = "\n".join(format_analysis(a))
    assert "deflated Sharpe: n/a" in text and "overfitting: n/a" in text
