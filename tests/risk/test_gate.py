"""The σ-gate: asymmetric entries, hysteresis, minimum hold, refusals with reasons."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import GateSettings
from risk.gate import gate

G = GateSettings(sigma_max=0.02, long_entry_strength=0.5, short_entry_strength=0.8, exit_strength=0.2,
                 min_hold_bars=0)


def test_long_entry_needs_the_long_threshold() -> None:
    assert gate(0.006, 0.01, 0, None, G).direction == 1          # 0.6 >= 0.5
    assert gate(0.004, 0.01, 0, None, G).direction == 0          # 0.4 < 0.5
    assert "weak" in gate(0.004, 0.01, 0, None, G).reason


def test_short_entry_needs_the_stronger_short_threshold() -> None:
    assert gate(-0.006, 0.01, 0, None, G).direction == 0         # 0.6 < 0.8: no short
    r = gate(-0.009, 0.01, 0, None, G)
    assert r.direction == -1 and "short entry 0.8" in r.reason


def test_sigma_above_the_cap_is_flat_whatever_the_signal() -> None:
    r = gate(0.5, 0.03, 1, 0, GateSettings(sigma_max=0.02, min_hold_bars=10))
    assert r.direction == 0 and "gated" in r.reason and "sigma_max" in r.reason


def test_hysteresis_keeps_a_position_between_exit_and_entry() -> None:
    assert gate(0.003, 0.01, 1, None, G).direction == 1          # 0.3: above exit 0.2
    assert gate(-0.003, 0.01, -1, None, G).direction == -1
    r = gate(0.001, 0.01, 1, None, G)                            # 0.1 < exit
    assert r.direction == 0 and "exit" in r.reason


def test_reversal_flips_only_with_the_opposite_entry_strength() -> None:
    assert gate(-0.009, 0.01, 1, None, G).direction == -1
    assert gate(-0.006, 0.01, 1, None, G).direction == 0         # reversed but too weak to short: exit


def test_minimum_hold_stops_signal_exits_and_flips_but_not_the_sigma_gate() -> None:
    g = GateSettings(sigma_max=0.02, long_entry_strength=0.5, short_entry_strength=0.8, exit_strength=0.2,
                     min_hold_bars=5)
    assert gate(0.0, 0.01, 1, 2, g).direction == 1
    assert gate(-0.009, 0.01, 1, 2, g).direction == 1
    assert "min hold" in gate(-0.009, 0.01, 1, 2, g).reason
    assert gate(-0.009, 0.01, 1, 5, g).direction == -1
    assert gate(0.0, 0.05, 1, 2, g).direction == 0


@pytest.mark.parametrize("mu, sigma", [(math.nan, 0.01), (0.01, math.nan), (0.01, 0.0), (0.01, -1.0),
                                       (math.inf, 0.01)])
def test_unusable_forecasts_are_flat(mu: float, sigma: float) -> None:
    assert gate(mu, sigma, 1, None, G).direction == 0


thresholds = st.floats(0.0, 3.0)


@given(mu=st.floats(-0.1, 0.1), sigma=st.floats(1e-4, 0.05), cur=st.sampled_from([-1, 0, 1]),
       held=st.none() | st.integers(0, 20), entry=thresholds, exit_frac=st.floats(0, 1),
       hold=st.integers(0, 10))
def test_with_equal_thresholds_the_gate_is_symmetric(mu: float, sigma: float, cur: int, held: int | None,
                                                     entry: float, exit_frac: float, hold: int) -> None:
    g = GateSettings(sigma_max=0.03, long_entry_strength=entry, short_entry_strength=entry,
                     exit_strength=entry * exit_frac, min_hold_bars=hold)
    assert gate(mu, sigma, cur, held, g).direction == -gate(-mu, sigma, -cur, held, g).direction
