"""The EWMA/momentum baseline against a direct, loop-based computation of its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strategies.baseline import EwmaMomentumPredictor


def windows(n: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, size=(n, length)) * 0.01, axis=1))
    w = np.empty((n, length, 5))
    w[:, :, 0] = w[:, :, 1] = w[:, :, 2] = w[:, :, 3] = close
    w[:, :, 4] = 1.0
    return w


def reference(closes: list[float], k: int, shrink: float, lam: float) -> tuple[float, float]:
    r = [math.log(b / a) for a, b in zip(closes, closes[1:])]
    mu = shrink * sum(r[-k:]) / k
    var = sum(x * x for x in r) / len(r)
    for x in r:
        var = lam * var + (1 - lam) * x * x
    return mu, math.sqrt(var)


def test_matches_the_recursive_ewma_definition_for_every_symbol() -> None:
    p = EwmaMomentumPredictor(momentum_bars=10, mu_shrink=0.5, ewma_lambda=0.94)
    w = windows(5, 64)
    out = p.predict(123, ["A", "B", "C", "D", "E"], w)
    for i, fc in enumerate(out):
        mu, sigma = reference(w[i, :, 3].tolist(), 10, 0.5, 0.94)
        assert fc.mu == pytest.approx(mu, rel=1e-9, abs=1e-15)
        assert fc.sigma == pytest.approx(sigma, rel=1e-9)
        assert fc.bar_ms == 123 and fc.model == p.name


def test_a_symbols_forecast_does_not_depend_on_the_others_in_the_batch() -> None:
    p = EwmaMomentumPredictor()
    w = windows(4, 50, seed=3)
    alone = p.predict(0, ["B"], w[1:2])[0]
    together = p.predict(0, ["A", "B", "C", "D"], w)[1]
    assert (alone.mu, alone.sigma) == pytest.approx((together.mu, together.sigma), rel=1e-12)


def test_sigma_is_floored_on_a_flat_market() -> None:
    p = EwmaMomentumPredictor(sigma_floor=1e-4)
    w = np.ones((1, 40, 5))
    fc = p.predict(0, ["A"], w)[0]
    assert fc.sigma == 1e-4 and fc.mu == 0.0


def test_short_windows_and_mismatched_inputs_are_refused() -> None:
    p = EwmaMomentumPredictor(momentum_bars=24)
    with pytest.raises(ValueError, match="shorter"):
        p.predict(0, ["A"], windows(1, 10))
    with pytest.raises(ValueError, match="symbols"):
        p.predict(0, ["A", "B"], windows(1, 40))
    assert p.predict(0, [], np.empty((0, 40, 5))) == []
