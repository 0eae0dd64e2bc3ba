"""The trading state machine: escalation on drawdown and miscalibration, cool-down, step-down."""

from __future__ import annotations

from decimal import Decimal

from bot.config import StateSettings
from risk.state import RiskState, TradingState, score, update_state

H = 3_600_000
S = StateSettings(reduce_drawdown=0.10, halt_drawdown=0.20, cooldown_bars=3, coverage_halflife_bars=20,
                  coverage_min_bars=30, coverage_tolerance=0.15)


def run(equities: list[str], st: RiskState | None = None, scores: list[tuple[bool, bool]] | None = None
        ) -> list[RiskState]:
    st = st or RiskState.initial(Decimal("1000"))
    out = []
    for i, e in enumerate(equities):
        st = update_state(st, i * H, Decimal(e), scores or [], S, H)
        out.append(st)
    return out


def test_drawdown_escalates_at_once() -> None:
    states = run(["1000", "1100", "980", "870"])
    assert [s.state for s in states] == [TradingState.ACTIVE, TradingState.ACTIVE, TradingState.REDUCING,
                                         TradingState.HALTED]
    assert states[1].peak_equity == Decimal("1100")
    assert "halt" in states[3].reason and states[3].since_bar_ms == 3 * H


def test_cooldown_steps_down_one_level_at_a_time_with_a_fresh_peak() -> None:
    states = run(["1000", "790", "790", "790", "790", "790", "790", "790"])
    levels = [s.state for s in states]
    assert levels[1] is TradingState.HALTED
    assert levels[2:4] == [TradingState.HALTED] * 2             # cooling down
    assert levels[4] is TradingState.REDUCING                   # 3 bars after the halt
    assert states[4].peak_equity == Decimal("790") and "cool-down" in states[4].reason
    assert levels[7] is TradingState.ACTIVE


def test_new_drawdown_during_cooldown_keeps_the_state() -> None:
    states = run(["1000", "850", "850", "850", "850"])
    assert states[1].state is TradingState.REDUCING
    assert states[4].state is TradingState.ACTIVE and states[4].peak_equity == Decimal("850")


def test_overconfident_model_is_halted_by_coverage() -> None:
    # Outcomes always outside both intervals: coverage drifts towards 0.
    states = run(["1000"] * 60, scores=[(False, False)])
    first = next(i for i, s in enumerate(states) if s.state is not TradingState.ACTIVE)
    assert first == S.coverage_min_bars - 1                   # not before enough outcomes were seen
    assert states[first].coverage_68 < 0.68 - 2 * S.coverage_tolerance
    assert states[first].state is TradingState.HALTED and "coverage" in states[first].reason


def test_moderate_miscalibration_reduces_but_does_not_halt() -> None:
    # One outcome in two inside the 68 % interval (coverage ~0.5) and 95 % hit rate ~0.9.
    pattern = [(True, True), (False, True), (True, True), (False, True), (False, True),
               (True, True), (False, False), (True, True), (False, True), (True, True)]
    st = RiskState.initial(Decimal("1000"))
    for i in range(200):
        st = update_state(st, i * H, Decimal("1000"), [pattern[i % 10]], S, H)
    assert st.state is TradingState.REDUCING and "coverage" in st.reason


def test_calibrated_model_stays_active() -> None:
    pattern = [(True, True)] * 68 + [(False, True)] * 27 + [(False, False)] * 5
    st = RiskState.initial(Decimal("1000"))
    for i in range(300):
        st = update_state(st, i * H, Decimal("1000"), [pattern[(i * 37) % 100]], S, H)
        assert st.state is TradingState.ACTIVE


def test_score_intervals() -> None:
    assert score(0.0, 0.01, 0.0099) == (True, True)
    assert score(0.0, 0.01, -0.015) == (False, True)
    assert score(0.0, 0.01, 0.02) == (False, False)
    assert score(0.0, 0.0, 0.01) is None
