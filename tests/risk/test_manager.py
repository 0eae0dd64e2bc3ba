"""The risk manager end to end on synthetic windows: state, gate, sizing and the VaR budget together."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import GateSettings, RiskSettings
from risk.manager import RiskManager, logged_state, restored_state
from risk.state import RiskState, TradingState
from strategies.events import Forecast

H = 3_600_000
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")
STEP = Decimal("0.00001")


def windows(n: int = 3, length: int = 128, vol: float = 0.01, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_t(4, size=(length, 1))
    r = (0.7 * common + 0.7 * rng.standard_t(4, size=(length, n))) * vol / 1.4
    close = 100 * np.exp(np.cumsum(r, axis=0)).T
    w = np.empty((n, length, 5))
    w[:, :, :4] = close[:, :, None]
    w[:, :, 4] = 1.0
    return w


# These tests exercise the cost-blind |mu|/sigma rule; tests/risk/test_edge_gate.py covers the default.
STRENGTH = RiskSettings(gate=GateSettings(rule="strength"))


def manager(risk: RiskSettings | None = None, state: TradingState = TradingState.ACTIVE) -> RiskManager:
    st_ = replace(RiskState.initial(Decimal("10000")), state=state, since_bar_ms=0, reason="test")
    return RiskManager(risk or STRENGTH, SYMBOLS, H, STEP, st_)


def forecasts(mus: list[float], sigma: float = 0.005, bar: int = 10 * H) -> list[Forecast]:
    return [Forecast(s, bar, m, sigma, "t") for s, m in zip(SYMBOLS, mus)]


def prices(w: np.ndarray) -> dict[str, Decimal]:
    return {s: Decimal(repr(float(w[i, -1, 3]))) for i, s in enumerate(SYMBOLS)}


def test_strong_signals_open_positions_with_reasons_and_leverage() -> None:
    w = windows()
    m = manager()
    out = m.decide(10 * H, forecasts([0.003, -0.004, 0.0]), w, {}, prices(w), Decimal("10000"))
    by = {d.symbol: d for d in out.decisions}
    assert by["BTC/USDT"].action == "buy" and "long entry" in by["BTC/USDT"].reason
    assert by["ETH/USDT"].action == "sell" and "short entry" in by["ETH/USDT"].reason
    assert by["XRP/USDT"].action == "none" and "weak" in by["XRP/USDT"].reason
    assert {i.symbol for i in out.intents} == {"BTC/USDT", "ETH/USDT"}
    assert all(Decimal(1) <= i.leverage <= Decimal(5) for i in out.intents)
    assert len(out.var) == 6 and {v.horizon for v in out.var} == {1, 24}


def test_halted_flattens_everything() -> None:
    w = windows()
    m = manager(state=TradingState.HALTED)
    held = {"BTC/USDT": Decimal("10"), "ETH/USDT": Decimal("-5")}
    out = m.decide(10 * H, forecasts([0.01, 0.01, 0.01]), w, held, prices(w), Decimal("10000"))
    by = {d.symbol: d for d in out.decisions}
    assert by["BTC/USDT"].target_qty == 0 and by["ETH/USDT"].target_qty == 0 and by["XRP/USDT"].target_qty == 0
    assert all("HALTED" in d.reason for d in out.decisions)


def test_a_tight_var_budget_is_met_by_cutting_the_largest_contributor_first() -> None:
    w = windows(vol=0.02)
    risk = STRENGTH
    risk = replace(risk, var=replace(risk.var, budget_1=0.002, budget_24=0.01),
                   gate=replace(risk.gate, sigma_max=0.5))
    m = manager(risk)
    out = m.decide(10 * H, forecasts([0.02, 0.02, 0.02], sigma=0.02), w, {}, prices(w), Decimal("10000"))
    assert out.steps, "the budget should have forced deleveraging"
    assert all(s.var_after <= s.var_before for s in out.steps)
    assert all(abs(s.exposure_after) <= abs(s.exposure_before) for s in out.steps)
    assert out.steps[-1].var_after <= 0.002 * 10000 + 1e-9
    assert any("VaR budget" in d.reason for d in out.decisions)


exposure = st.decimals(-50, 50, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(mus=st.lists(st.floats(-0.02, 0.02), min_size=3, max_size=3), sigma=st.floats(0.001, 0.03),
       held=st.lists(exposure, min_size=3, max_size=3), seed=st.integers(0, 5))
def test_reducing_never_opens_adds_or_flips(mus: list[float], sigma: float, held: list[Decimal], seed: int) -> None:
    w = windows(seed=seed)
    m = manager(state=TradingState.REDUCING)
    # Equity high enough that the state does not escalate on drawdown during the test.
    positions = dict(zip(SYMBOLS, held))
    out = m.decide(10 * H, forecasts(mus, sigma), w, positions, prices(w), Decimal("10000"))
    assert m.state.state is TradingState.REDUCING
    for d in out.decisions:
        cur = positions[d.symbol]
        assert abs(d.target_qty) <= abs(cur)
        assert d.target_qty == 0 or (d.target_qty > 0) == (cur > 0)


def test_state_round_trips_through_its_logged_form() -> None:
    st_ = RiskState(TradingState.REDUCING, 5 * H, Decimal("12345.6"), "drawdown", 0.61, 0.9, 42)
    assert restored_state(logged_state(st_, {"BTC/USDT": 3 * H})) == st_
    assert logged_state(st_, {"BTC/USDT": 3 * H}).entry_bars == (("BTC/USDT", 3 * H),)


def test_minimum_hold_counts_from_the_bar_a_position_took_its_direction() -> None:
    w = windows()
    risk = STRENGTH
    risk = replace(risk, gate=replace(risk.gate, min_hold_bars=3))
    m = manager(risk)
    held = {"BTC/USDT": Decimal("10")}
    weak = forecasts([0.0, 0.0, 0.0])
    for k in range(3):   # held 0, 1, 2 bars: kept despite a zero signal
        out = m.decide((10 + k) * H, [replace(f, bar_ms=(10 + k) * H) for f in weak], w, held, prices(w),
                       Decimal("10000"))
        assert {d.symbol: d for d in out.decisions}["BTC/USDT"].action == "none"
    out = m.decide(13 * H, [replace(f, bar_ms=13 * H) for f in weak], w, held, prices(w), Decimal("10000"))
    assert {d.symbol: d for d in out.decisions}["BTC/USDT"].action == "sell"
