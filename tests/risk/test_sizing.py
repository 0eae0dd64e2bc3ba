"""Sizing: fractional Kelly, volatility target, per-symbol and gross caps, position leverage."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import SizingSettings
from risk.sizing import bars_per_year, cap_gross, position_leverage, target_fraction

H = 3_600_000
S = SizingSettings(kelly_fraction=0.25, target_vol_annual=0.6, max_position_fraction=0.5, max_gross_leverage=1.5,
                   max_leverage=5.0)


def test_kelly_binds_for_a_weak_forecast() -> None:
    # 0.25 × 0.0002 / 0.01² = 0.5 ... use a weaker mu: 0.25 × 0.00005 / 1e-4 = 0.125
    assert target_fraction(1, 0.00005, 0.01, S, H) == pytest.approx(0.125)


def test_volatility_target_binds_for_a_volatile_forecast() -> None:
    vol_bar = 0.6 / math.sqrt(8760)
    assert target_fraction(-1, 0.01, 0.02, S, H) == pytest.approx(-vol_bar / 0.02)


def test_per_symbol_cap_binds_for_a_strong_calm_forecast() -> None:
    assert target_fraction(1, 0.01, 0.001, S, H) == 0.5


def test_flat_direction_is_zero() -> None:
    assert target_fraction(0, 0.01, 0.01, S, H) == 0.0


def test_bars_per_year() -> None:
    assert bars_per_year(H) == 8760
    assert bars_per_year(86_400_000) == 365


@given(st.dictionaries(st.sampled_from(["A", "B", "C", "D"]), st.floats(-2, 2), max_size=4), st.floats(0.1, 5))
def test_gross_cap_scales_everything_by_one_factor(fractions: dict[str, float], cap: float) -> None:
    capped, factor = cap_gross(fractions, cap)
    assert sum(abs(f) for f in capped.values()) <= cap + 1e-9
    assert 0 < factor <= 1
    for k, f in fractions.items():
        assert capped[k] == pytest.approx(f * factor)
        assert abs(capped[k]) <= abs(f)


def test_position_leverage_is_the_exposure_over_an_equal_margin_share_clamped() -> None:
    assert position_leverage(0.1, 3, S) == 1.0
    assert position_leverage(0.5, 3, S) == 1.5
    assert position_leverage(-0.5, 20, S) == 5.0
