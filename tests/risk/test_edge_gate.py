"""The net-edge rule: trade only when the expected return pays the round trip, by a credible margin."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import GateSettings, RiskSettings
from risk.gate import edge_gate_parts
from risk.manager import RiskManager
from risk.state import RiskState
from strategies.events import Forecast

G = GateSettings()
edges = st.floats(-0.05, 0.05, allow_nan=False)
ses = st.floats(0.0, 0.02, allow_nan=False)
costs = st.floats(0.0, 0.005, allow_nan=False)
dirs = st.sampled_from([-1, 0, 1])


def direction(edge: float, se: float, cost: float, current: int, s: GateSettings = G, skill: float = 1.0) -> int:
    return edge_gate_parts(edge, se, 0.01, cost, current, None, s, skill)[0]


def test_a_one_bar_edge_smaller_than_the_round_trip_never_enters() -> None:
    cost = 0.0012                                  # 10 bps fee + 2 bps slippage a fill
    assert direction(0.0023, 0.0, cost, 0) == 0    # 23 bps cannot pay 24
    assert direction(0.0025, 0.0, cost, 0) == 1
    assert direction(-0.0025, 0.0, cost, 0) == -1
    # ... and must also clear its uncertainty: 1 standard error for a long, 1.5 for a short.
    assert direction(0.0030, 0.0007, cost, 0) == 0 and direction(0.0030, 0.0005, cost, 0) == 1
    assert direction(-0.0030, 0.0005, cost, 0) == 0 and direction(-0.0030, 0.0004, cost, 0) == -1


def test_a_position_is_kept_while_staying_earns_and_closed_when_it_does_not() -> None:
    assert direction(0.0001, 0.0, 0.0012, 1) == 1       # inside the entry band, but staying still earns
    assert direction(0.0, 0.0, 0.0012, 1) == 1          # nothing left, nothing lost: a tie keeps it (no fee)
    assert direction(-0.0001, 0.0, 0.0012, 1) == 0      # reversed but too weak to pay a flip: flat
    assert direction(-0.0030, 0.0, 0.0012, 1) == -1     # reversed and paying the flip


def test_no_skill_means_no_trade_with_its_reason() -> None:
    d, _, reason, _ = edge_gate_parts(0.0, math.inf, 0.01, 0.0012, 0, None, G, 0.0)
    assert d == 0 and reason.startswith("no skill")
    d, _, reason, _ = edge_gate_parts(0.0, math.inf, 0.01, 0.0012, 1, None, G, 0.0)
    assert d == 0 and reason.startswith("exit: no skill")


@settings(max_examples=300, deadline=None)
@given(se=ses, cost=costs, current=dirs, mu_raw=st.floats(-0.05, 0.05))
def test_zero_skill_never_opens_or_grows_a_position(se: float, cost: float, current: int, mu_raw: float) -> None:
    # Zero skill: the effective edge is 0 × the model's mu, whatever the model says.
    d = direction(0.0 * mu_raw, se, cost, current, skill=0.0)
    assert d == 0 or d == current
    assert direction(0.0 * mu_raw, se, cost, 0, skill=0.0) == 0


@settings(max_examples=300, deadline=None)
@given(edge=edges, se=ses, cost=costs, current=dirs, margin=st.floats(0.0, 3.0))
def test_the_no_trade_band_is_symmetric_in_direction_when_the_margins_are(edge: float, se: float, cost: float,
                                                                          current: int, margin: float) -> None:
    s = replace(G, long_entry_margin=margin, short_entry_margin=margin)
    assert direction(edge, se, cost, current, s) == -direction(-edge, se, cost, -current, s)


@settings(max_examples=200, deadline=None)
@given(path=st.lists(st.tuples(edges, ses), min_size=1, max_size=60), c1=costs, extra=st.floats(0.0, 0.005))
def test_higher_costs_never_raise_turnover(path: list[tuple[float, float]], c1: float, extra: float) -> None:
    def turnover(cost: float) -> int:
        pos, total = 0, 0
        for edge, se in path:
            new = direction(edge, se, cost, pos)
            total += abs(new - pos)
            pos = new
        return total

    assert turnover(c1 + extra) <= turnover(c1)


def _manager(**gate: object) -> RiskManager:
    s = RiskSettings()
    s = replace(s, gate=replace(s.gate, **gate))
    return RiskManager(s, ["BTC/USDT"], 3_600_000, Decimal("0.00001"), RiskState.initial(Decimal(10_000)),
                       costs=0.0012)


def _target(manager: RiskManager, f: Forecast) -> Decimal:
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, 128)))
    windows = np.repeat(closes[None, :, None], 5, axis=2)
    out = manager.decide(1_704_067_200_000, [f], windows, {"BTC/USDT": Decimal(0)}, {"BTC/USDT": Decimal("100")},
                         Decimal(10_000))
    return out.decisions[0].target_qty


@settings(max_examples=60, deadline=None)
@given(mu_raw=st.floats(0.0005, 0.02), b1=st.floats(0.0, 2.0), extra=st.floats(0.0, 1.0),
       se_beta=st.floats(0.0, 0.5))
def test_more_demonstrated_skill_never_lowers_exposure(mu_raw: float, b1: float, extra: float, se_beta: float) -> None:
    def forecast(b: float) -> Forecast:
        return Forecast("BTC/USDT", 1_704_067_200_000, b * mu_raw, 0.01, "m", edge_se=se_beta * mu_raw,
                        mu_raw=mu_raw, skill=b)

    lo = abs(_target(_manager(), forecast(b1)))
    hi = abs(_target(_manager(), forecast(min(b1 + extra, 2.0))))
    assert hi >= lo


def test_the_cost_blind_rule_is_still_there_for_comparison() -> None:
    f = Forecast("BTC/USDT", 1_704_067_200_000, 0.0015, 0.01, "m")        # |mu|/sigma 0.15, 15 bps < 24
    assert _target(_manager(rule="strength"), f) > 0
    assert _target(_manager(), f) == 0


def test_the_band_values_a_position_by_how_often_a_tradeable_signal_comes_back() -> None:
    from risk.band import band_values, static_values

    cost = 0.0012
    assert band_values([], cost) == static_values(cost) == band_values([0.0] * 500, cost)
    quiet = band_values([0.0001 * ((-1) ** k) for k in range(500)], cost)
    busy = band_values([0.004 * ((-1) ** k) for k in range(500)], cost)
    # Strong signals of either sign keep coming: being in a position is worth more than its exit fee alone,
    # so a new one is entered below the one-bar threshold of 2c; weak ones never pay and change nothing.
    assert -cost < quiet[2] < -cost + 0.0002 and busy[2] > quiet[2] + 0.001
    assert busy[0] == pytest.approx(busy[2])
    assert direction(0.0020, 0.0, cost, 0) == 0
    assert edge_gate_parts(0.0020, 0.0, 0.01, cost, 0, None, G, 1.0, quiet)[0] == 0
    assert edge_gate_parts(0.0020, 0.0, 0.01, cost, 0, None, G, 1.0, busy)[0] == 1


@settings(max_examples=150, deadline=None)
@given(samples=st.lists(st.floats(-0.01, 0.01), min_size=1, max_size=200), cost=costs)
def test_band_values_are_symmetric_and_never_below_the_exit_fee(samples: list[float], cost: float) -> None:
    from risk.band import band_values

    h_short, h_flat, h_long = band_values(samples, cost)
    assert h_flat == 0.0 and h_long == pytest.approx(h_short, abs=1e-12)
    # A position can always be closed for one fee: it is worth at least -c, and at most what one fee saves.
    assert -cost - 1e-12 <= h_long <= cost + 1e-12


@settings(max_examples=150, deadline=None)
@given(path=st.lists(st.tuples(edges, ses), min_size=1, max_size=40), c1=costs, extra=st.floats(0.0, 0.005),
       samples=st.lists(st.floats(-0.01, 0.01), min_size=1, max_size=100))
def test_higher_costs_never_raise_turnover_with_a_band_from_history(path: list[tuple[float, float]], c1: float,
                                                                    extra: float, samples: list[float]) -> None:
    from risk.band import band_values

    def turnover(cost: float) -> int:
        h = band_values(samples, cost)
        pos, total = 0, 0
        for edge, se in path:
            new = edge_gate_parts(edge, se, 0.01, cost, pos, None, G, 1.0, h)[0]
            total += abs(new - pos)
            pos = new
        return total

    assert turnover(c1 + extra) <= turnover(c1)
