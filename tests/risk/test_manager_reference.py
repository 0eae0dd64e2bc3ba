"""The risk manager against a frozen copy of the code it was before it was made faster
(``_reference_manager.py``): for the same inputs, bar after bar, every Decision, OrderIntent (Decimals to
their exponent), VaR estimate, deleveraging step, state and entry bar is identical, and where the
reference raises, the live manager raises the same error."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

import _reference_manager as reference
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk import manager as live
from risk.settings import GateSettings, RiskSettings
from risk.state import RiskState, TradingState
from strategies.events import Forecast

# The reference implements the cost-blind |mu|/sigma rule (risk.gate.rule = "strength").
STRENGTH = RiskSettings(gate=GateSettings(rule="strength"))
H = 3_600_000
D = Decimal


def outcome(m: Any, *args: Any) -> tuple[str, str, Any]:
    try:
        r = m.decide(*args)
    except Exception as exc:  # noqa: BLE001 - the same error is the point
        return "error", f"{type(exc).__name__}: {exc}", None
    return "ok", repr((r.decisions, r.intents, r.var, r.steps, r.state, sorted(r.entry_bars.items()))), r


def both(settings_: RiskSettings, symbols: list[str], step: Decimal, state: RiskState,
         entry_bars: dict[str, int] | None = None, previous: tuple[Forecast, ...] = ()) -> tuple[Any, Any]:
    return tuple(cls(settings_, symbols, H, step, state, entry_bars, previous)  # type: ignore[return-value]
                 for cls in (live.RiskManager, reference.RiskManager))


def run_both(pair: tuple[Any, Any], *args: Any) -> tuple[str, str, Any]:
    mine, ref = (outcome(m, *args) for m in pair)
    assert mine[:2] == ref[:2]
    assert pair[0].entry_bars == pair[1].entry_bars and pair[0].state == pair[1].state
    return mine


def price_windows(rng: np.random.Generator, n: int, length: int, vol: float) -> np.ndarray:
    r = rng.standard_t(4, size=(length, n)) * vol
    close = 100 * np.exp(np.cumsum(r, axis=0)).T
    w = np.empty((n, length, 5))
    w[:, :, :4] = close[:, :, None]
    w[:, :, 4] = 1.0
    return w


# -- drawn inputs ------------------------------------------------------------------------------------

finite_mu = st.floats(-0.03, 0.03, allow_nan=False)
mus = st.one_of(finite_mu, finite_mu, finite_mu, st.sampled_from([0.0, -0.0, math.nan, math.inf, 1e-9]))
sigmas = st.one_of(st.floats(0.0005, 0.04), st.floats(0.0005, 0.04), st.sampled_from([0.0, -0.01, math.nan,
                                                                                       math.inf, 0.02]))
qtys = st.one_of(
    st.just(D(0)), st.just(D("-0")), st.just(D("0E-5")),
    st.decimals(-500, 500, places=5, allow_nan=False, allow_infinity=False),
    st.decimals(-5, 5, places=8, allow_nan=False, allow_infinity=False),
    st.builds(lambda c, e, neg: D((neg, tuple(int(x) for x in str(c)), e)), st.integers(1, 10**9),
              st.integers(-12, 3), st.integers(0, 1)),
)
prices_ = st.one_of(
    st.decimals("0.0001", "100000", places=6, allow_nan=False, allow_infinity=False),
    st.builds(lambda c, e: D((0, tuple(int(x) for x in str(c)), e)), st.integers(1, 10**7), st.integers(-8, 2)),
    st.sampled_from([D(0), D("-1.5")]),
)
steps_ = st.sampled_from([D("0.00001"), D("0.001"), D("1E+1"), D("1"), D("0.5"), D("0.00001000"), D("3E-7")])
equities = st.one_of(st.decimals(1, 10**7, places=4, allow_nan=False, allow_infinity=False),
                     st.sampled_from([D("10000"), D(0), D("-50"), D("0.01")]))


@st.composite
def risk_settings(draw: st.DrawFn) -> RiskSettings:
    r = STRENGTH
    gate = replace(r.gate, sigma_max=draw(st.sampled_from([0.02, 0.05, 0.01])),
                   min_hold_bars=draw(st.sampled_from([0, 0, 2, 5])),
                   long_entry_strength=draw(st.sampled_from([0.1, 0.0, 0.5])),
                   exit_strength=draw(st.sampled_from([0.03, 0.0])))
    sizing = replace(r.sizing, max_gross_leverage=draw(st.sampled_from([1.5, 0.3, 5.0])),
                     rebalance_tolerance=draw(st.sampled_from([0.2, 0.0, 0.5, 1.0])),
                     max_leverage=draw(st.sampled_from([5.0, 1.0, 20.0])))
    var = replace(r.var, budget_1=draw(st.sampled_from([0.03, 0.002, 0.5])),
                  budget_24=draw(st.sampled_from([0.12, 0.01, 0.9])))
    state = replace(r.state, reduce_drawdown=draw(st.sampled_from([0.10, 0.01])),
                    halt_drawdown=draw(st.sampled_from([0.20, 0.02])),
                    cooldown_bars=draw(st.sampled_from([24, 1, 2])),
                    coverage_min_bars=draw(st.sampled_from([100, 3])),
                    coverage_tolerance=draw(st.sampled_from([0.15, 0.02])))
    return RiskSettings(gate=gate, sizing=sizing, var=var, state=state)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 6))
    symbols = [f"S{i}/USDT" for i in range(n)]
    bars = draw(st.integers(1, 5))
    return {
        "settings": draw(risk_settings()),
        "symbols": symbols,
        "step": draw(steps_),
        "state": draw(st.sampled_from(list(TradingState))),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "vol": draw(st.sampled_from([0.01, 0.03, 0.0])),
        "length": draw(st.sampled_from([2, 30, 64])),
        "bars": [{
            "mus": draw(st.lists(mus, min_size=n, max_size=n)),
            "sigmas": draw(st.lists(sigmas, min_size=n, max_size=n)),
            "qtys": draw(st.lists(qtys, min_size=n, max_size=n)),
            "follow": draw(st.booleans()),        # positions follow the last decisions instead
            "prices": draw(st.lists(prices_, min_size=n, max_size=n)),
            "equity": draw(equities),
            "subset": draw(st.booleans()),        # forecasts for the first symbols only
            "blocked": draw(st.sampled_from([None, None, "trade log failing"])),
            "halt": draw(st.sampled_from([None, None, None, "feed stale"])),
            "skip": draw(st.sampled_from([1, 1, 1, 2])),   # bars since the last one
        } for _ in range(bars)],
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_decide_is_identical_to_the_reference(sc: dict[str, Any]) -> None:
    rng = np.random.default_rng(sc["seed"])
    syms = sc["symbols"]
    state = replace(RiskState.initial(D("10000")), state=sc["state"], since_bar_ms=0, reason="drawn")
    pair = both(sc["settings"], syms, sc["step"], state, {syms[0]: 0} if len(syms) > 1 else None)
    bar_ms = 10 * H
    positions: dict[str, Decimal] = {}
    for b in sc["bars"]:
        bar_ms += b["skip"] * H
        k = max(1, len(syms) // 2) if b["subset"] else len(syms)
        fc = [Forecast(s, bar_ms, mu, sd, "t") for s, mu, sd in zip(syms[:k], b["mus"], b["sigmas"])]
        w = price_windows(rng, k, sc["length"], sc["vol"])
        if not b["follow"] or not positions:
            positions = dict(zip(syms, b["qtys"]))
        prices = dict(zip(syms, b["prices"]))
        for m in pair:
            m.block_new_exposure(b["blocked"])
            if b["halt"]:
                m.halt(b["halt"])
        status, _, result = run_both(pair, bar_ms, fc, w, positions, prices, b["equity"])
        if status == "ok":   # the next bar may hold what these decisions asked for
            positions = dict(positions) | {i.symbol: i.target_qty for i in result.intents}


def test_decide_is_identical_on_a_realistic_trajectory() -> None:
    """30 symbols over 60 bars of a synthetic market, the baseline's forecasts, positions following the
    intents and exact cash: the path ``scripts/bench_risk.py`` times."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import bench_risk

    bars = bench_risk.record(30, 60)
    for no_var in (False, True):
        _, mine = bench_risk.replay(live.RiskManager, bars, 30, no_var)
        _, ref = bench_risk.replay(reference.RiskManager, bars, 30, no_var)
        for a, b in zip(mine, ref, strict=True):
            assert repr((a.decisions, a.intents, a.var, a.steps, a.state, a.entry_bars)) == \
                repr((b.decisions, b.intents, b.var, b.steps, b.state, b.entry_bars))
    assert sum(len(r.intents) for r in mine) > 20


def test_decide_is_identical_with_a_symbol_given_twice() -> None:
    syms = ["A/USDT", "B/USDT"]
    pair = both(STRENGTH, syms, D("0.001"), RiskState.initial(D("1000")))
    rng = np.random.default_rng(1)
    fc = [Forecast("A/USDT", 10 * H, 0.01, 0.01, "t"), Forecast("B/USDT", 10 * H, -0.02, 0.01, "t"),
          Forecast("A/USDT", 10 * H, -0.02, 0.012, "t")]
    run_both(pair, 10 * H, fc, price_windows(rng, 3, 40, 0.01), {"A/USDT": D("1.5")},
             {"A/USDT": D("101.5"), "B/USDT": D("20")}, D("1000"))


@pytest.mark.parametrize("qty_step", [D(0), D("-1"), D("NaN")])
def test_the_same_error_on_a_bad_step(qty_step: Decimal) -> None:
    pair = both(STRENGTH, ["A/USDT"], qty_step, RiskState.initial(D("1000")))
    fc = [Forecast("A/USDT", 10 * H, 0.0, 0.01, "t")]
    status, text, _ = run_both(pair, 10 * H, fc, price_windows(np.random.default_rng(2), 1, 40, 0.01),
                            {"A/USDT": D(0)}, {"A/USDT": D("10")}, D("1000"))
    assert status == "error" and "step must be a finite Decimal" in text


def test_the_same_outcome_on_odd_prices_and_positions() -> None:
    """Infinite and NaN prices, positions and equity: the same result or the same error."""
    rng = np.random.default_rng(3)
    w = price_windows(rng, 2, 40, 0.01)
    cases = [
        ({"A/USDT": D("Infinity"), "B/USDT": D("2")}, {"A/USDT": D(0), "B/USDT": D(1)}, D("1000")),
        ({"A/USDT": D("1"), "B/USDT": D("2")}, {"A/USDT": D("NaN"), "B/USDT": D(1)}, D("1000")),
        ({"A/USDT": D("1"), "B/USDT": D("2")}, {"A/USDT": D(0), "B/USDT": D(1)}, D("NaN")),
        ({"A/USDT": D("1"), "B/USDT": D("2")}, {"A/USDT": D(0), "B/USDT": D(1)}, D("Infinity")),
        ({"A/USDT": D("1"), "B/USDT": D("2")}, {"A/USDT": D("-Infinity"), "B/USDT": D(1)}, D("1000")),
        ({"A/USDT": 3, "B/USDT": D("2")}, {"A/USDT": 0, "B/USDT": D("-0")}, D("1000")),
        ({"A/USDT": D("1"), "B/USDT": D("-0")}, {}, D("1000")),
    ]
    for prices, positions, equity in cases:
        for mu in (0.0, 0.01, -0.01):
            pair = both(STRENGTH, ["A/USDT", "B/USDT"], D("0.001"), RiskState.initial(D("1000")))
            fc = [Forecast("A/USDT", 10 * H, mu, 0.01, "t"), Forecast("B/USDT", 10 * H, -mu, 0.01, "t")]
            run_both(pair, 10 * H, fc, w, positions, prices, equity)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 40), st.integers(-40, 40), st.sampled_from([D("2"), D("0.5"), D("3"),
                                                                                  D("1.25"), D(0)]),
                          st.booleans(), st.sampled_from([1.0, 0.5, 1 / 3, 0.1])),
                min_size=1, max_size=6),
       st.sampled_from([0.2, 0.25, 0.5, 0.0, 1.0]), st.sampled_from([D("1"), D("0.5"), D("0.001"), D("1E+1")]),
       st.sampled_from([D("1000"), D("7.5"), D(0)]))
def test_orders_are_identical_at_the_rebalance_tolerance(rows: list[Any], tolerance: float, step: Decimal,
                                                         equity: Decimal) -> None:
    """Targets and positions on whole steps, so that |target − current| lands exactly on the tolerance."""
    r = STRENGTH
    r = replace(r, sizing=replace(r.sizing, rebalance_tolerance=tolerance))
    syms = [f"S{i}/USDT" for i in range(len(rows))]
    positions = {s: row[1] * step for s, row in zip(syms, rows)}
    prices = {s: row[2] for s, row in zip(syms, rows)}
    target = [float(row[0] * step * row[2]) * row[4] for row in rows]
    forced = [row[3] for row in rows]
    mine, ref = both(r, syms, step, RiskState.initial(D("1000")))
    signs = mine._track_entries(10 * H, positions)
    reasons_a: dict[str, list[str]] = {s: ["gate"] for s in syms}
    reasons_b: dict[str, list[str]] = {s: ["gate"] for s in syms}
    a = mine._orders(10 * H, syms, target, forced, positions, prices, equity, reasons_a, signs)
    b = ref._orders(10 * H, syms, np.array(target), np.array(forced), positions, prices, equity, reasons_b)
    assert repr(a) == repr(b)
