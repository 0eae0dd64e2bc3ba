"""The retraining gate: a candidate replaces the serving model only by beating it on held-out outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strategies.validation import GateRule, Scores, gate, score

RULE = GateRule(nll_margin=0.01, coverage_tolerance=0.05, skill_tolerance=0.0)


def scores(nll: float, c68: float = 0.68, c95: float = 0.95, skill: float = 0.0) -> Scores:
    return Scores(500, nll, c68, c95, skill, 0.0)


def test_score_of_a_calibrated_gaussian_forecast() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(0.0, 0.01, 20_000)
    s = score(np.zeros_like(y), np.full_like(y, 0.01), y)
    assert s.n == 20_000
    assert s.nll == pytest.approx(0.5 + math.log(0.01) + 0.5 * math.log(2 * math.pi), abs=0.02)
    assert s.coverage68 == pytest.approx(0.68, abs=0.01) and s.coverage95 == pytest.approx(0.95, abs=0.01)
    assert s.calibration_error < 0.02 and s.skill == 0.0


def test_a_mean_that_points_the_right_way_shows_skill_and_one_that_points_the_wrong_way_none() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 0.01, 4000)
    y = 0.5 * x + rng.normal(0.0, 0.01, 4000)
    right, wrong = score(0.5 * x, np.full_like(x, 0.011), y), score(-0.5 * x, np.full_like(x, 0.011), y)
    assert right.skill > 0.5 and right.slope > 0.9
    assert wrong.skill == 0.0 and wrong.slope < 0 and wrong.nll > right.nll


def test_non_finite_forecasts_are_left_out() -> None:
    s = score([0.0, math.nan, 0.0], [0.01, 0.01, 0.0], [0.001, 0.002, 0.003])
    assert s.n == 1


@pytest.mark.parametrize(("candidate", "serving", "accepted", "says"), [
    (scores(-3.10), scores(-3.00), True, "better by 0.1000"),
    (scores(-3.005), scores(-3.00), False, "less than the margin"),
    (scores(-2.90), scores(-3.00), False, "better by -0.1000"),
    (scores(-3.10, c68=0.50, c95=0.80), scores(-3.00), False, "calibration error 0.330"),
    (scores(-3.10, skill=0.1), scores(-3.00, skill=0.4), False, "demonstrated skill 0.100 vs serving 0.400"),
    (scores(-3.10, skill=0.4), scores(-3.00, skill=0.1), True, "skill 0.400 vs 0.100"),
    (Scores(0, math.nan, math.nan, math.nan, 0.0, 0.0), scores(-3.0), False, "no finite forecast"),
    (scores(-3.0), Scores(0, math.nan, math.nan, math.nan, 0.0, 0.0), True, "no serving-model score"),
])
def test_gate(candidate: Scores, serving: Scores, accepted: bool, says: str) -> None:
    v = gate(candidate, serving, RULE)
    assert v.accepted is accepted and says in v.reason, v.reason
