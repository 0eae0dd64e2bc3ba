"""The minimal decision step: σ-gate, entry/exit hysteresis, sizing, refusals with reasons."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import DecisionSettings
from bot.events import Forecast
from bot.execution.paper import rounded_qty
from risk.threshold import decide

S = DecisionSettings(sigma_max=0.02, entry_strength=0.5, exit_strength=0.2, position_fraction=0.25,
                     rebalance_tolerance=0.2)
STEP = Decimal("0.001")
EQ = Decimal("10000")
PX = Decimal("100")


def f(mu: float, sigma: float = 0.01) -> Forecast:
    return Forecast("BTC/USDT", 0, mu, sigma, "test")


def test_strong_long_signal_buys_the_target_fraction() -> None:
    d = decide(f(0.006), Decimal(0), PX, EQ, S, STEP)
    assert d.action == "buy" and d.target_qty == Decimal("25") and "long" in d.reason


def test_strong_short_signal_sells_to_a_negative_target() -> None:
    d = decide(f(-0.006), Decimal(0), PX, EQ, S, STEP)
    assert d.action == "sell" and d.target_qty == Decimal("-25")


def test_sigma_above_cap_is_gated_and_flattens() -> None:
    d = decide(f(0.1, sigma=0.03), Decimal("10"), PX, EQ, S, STEP)
    assert d.action == "sell" and d.target_qty == 0 and "gated" in d.reason and "sigma_max" in d.reason
    flat = decide(f(0.1, sigma=0.03), Decimal(0), PX, EQ, S, STEP)
    assert flat.action == "none" and "gated" in flat.reason


def test_weak_signal_does_not_open() -> None:
    d = decide(f(0.004), Decimal(0), PX, EQ, S, STEP)  # strength 0.4 < 0.5
    assert d.action == "none" and d.target_qty == 0 and "weak" in d.reason


def test_hysteresis_keeps_a_position_between_exit_and_entry() -> None:
    held = decide(f(0.003), Decimal("25"), PX, EQ, S, STEP)  # 0.3: below entry, above exit
    assert held.action == "none" and held.target_qty == Decimal("25") and "hold" in held.reason
    closed = decide(f(0.001), Decimal("25"), PX, EQ, S, STEP)  # 0.1 < exit
    assert closed.action == "sell" and closed.target_qty == 0 and "exit" in closed.reason


def test_reversal_flips_the_position() -> None:
    d = decide(f(-0.008), Decimal("25"), PX, EQ, S, STEP)
    assert d.action == "sell" and d.target_qty == Decimal("-25")


def test_small_drift_is_not_rebalanced_but_large_is() -> None:
    assert decide(f(0.006), Decimal("22"), PX, EQ, S, STEP).action == "none"   # |25-22| <= 5
    assert decide(f(0.006), Decimal("15"), PX, EQ, S, STEP).action == "buy"


@pytest.mark.parametrize("sigma", [0.0, float("nan"), -0.01])
def test_invalid_sigma_never_opens(sigma: float) -> None:
    d = decide(f(0.01, sigma=sigma), Decimal(0), PX, EQ, S, STEP)
    assert d.action == "none" and d.target_qty == 0


@given(mu=st.floats(-0.05, 0.05), sigma=st.floats(1e-4, 0.05),
       cur=st.decimals(-50, 50, places=3, allow_nan=False, allow_infinity=False))
def test_gate_is_symmetric_and_target_never_exceeds_the_fraction(mu: float, sigma: float, cur: Decimal) -> None:
    up = decide(f(mu, sigma), cur, PX, EQ, S, STEP)
    down = decide(f(-mu, sigma), -cur, PX, EQ, S, STEP)
    assert up.target_qty == -down.target_qty
    cap = rounded_qty(Decimal("0.25") * EQ / PX, STEP)
    assert abs(up.target_qty) <= cap or up.target_qty == cur
    assert (up.action == "none") == (up.target_qty == cur)
