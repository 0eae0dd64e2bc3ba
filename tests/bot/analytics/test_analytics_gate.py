"""The gate's worth on a constructed decision log."""

from __future__ import annotations

import pytest

from bot.analytics.gate import TAKEN, DecisionOutcome, gate_worth, refusal_kind, refused_total, round_trip_cost_bps

REASONS = {
    "weak": "weak: mu=0.000100 sigma=0.010000 |mu|/sigma=0.010 below long entry: flat; target +0.000 x equity",
    "gated": "gated: sigma 0.030000 > sigma_max 0.02: flat; target +0.000 x equity",
    "halted": "signal: mu=0.003 sigma=0.01 |mu|/sigma=0.300 >= long entry 0.1; HALTED (drawdown 25%): flat; "
              "target +0.000 x equity",
    "reducing": "signal: mu=0.003 ...; REDUCING (drawdown 12%): no new exposure; target +0.000 x equity",
    "VaR unavailable": "signal: ...; VaR unavailable (too short): no new exposure; target +0.000 x equity",
}


def test_reasons_are_grouped_by_what_refused() -> None:
    for kind, reason in REASONS.items():
        assert refusal_kind(reason) == kind
        assert refusal_kind("late (missed on the stream, decided from REST): " + reason) == kind
    assert refusal_kind("unusable forecast mu=nan sigma=0.01: flat; target +0.000 x equity") == "unusable forecast"


def test_what_refused_signals_would_have_earned() -> None:
    d = DecisionOutcome
    log = [
        d(1, "A", "none", True, REASONS["weak"], 0.001, 0.02, 1000.0),     # long, up 2 %: +20
        d(1, "B", "none", True, REASONS["weak"], -0.001, 0.01, 1000.0),    # short, up 1 %: −10
        d(2, "A", "none", True, REASONS["gated"], -0.002, -0.03, 2000.0),  # short, down 3 %: +60
        d(2, "B", "buy", False, "signal: ...", 0.002, -0.01, 2000.0),      # taken long, down 1 %: −20
        d(3, "A", "none", False, "hold: ...", 0.002, 0.05, 2000.0),        # held, unchanged: taken
        d(3, "B", "none", True, REASONS["weak"], 0.0, 0.05, 2000.0),       # μ = 0: no signal at all
    ]
    rows = {r.kind: r for r in gate_worth(log, cost_bps=10)}
    assert set(rows) == {"weak", "gated", TAKEN}
    assert rows["weak"].signals == 2 and rows["weak"].hit_rate == 0.5
    assert rows["weak"].would_earn == pytest.approx(10.0)
    assert rows["weak"].net_of_costs == pytest.approx(10.0 - 2 * 1.0)
    assert rows["weak"].mean_bps == pytest.approx((200 - 100) / 2)
    assert rows["gated"].would_earn == pytest.approx(60.0) and rows["gated"].net_of_costs == pytest.approx(58.0)
    assert rows[TAKEN].signals == 2 and rows[TAKEN].would_earn == pytest.approx(-20.0 + 100.0)
    total = refused_total(list(rows.values()))
    assert total is not None and (total.signals, total.would_earn) == (3, pytest.approx(70.0))
    assert list(rows)[-1] == TAKEN


def test_costs_come_from_the_paper_settings() -> None:
    assert round_trip_cost_bps({"paper": {"taker_fee_bps": "10", "slippage_bps": "2"}}) == 24.0
    assert round_trip_cost_bps({}) == 0.0
