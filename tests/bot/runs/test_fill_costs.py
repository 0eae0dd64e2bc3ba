"""The cost one fill carries into the net-edge decision: the paper fee and slippage, or the exchange's own fee."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.config import Settings
from bot.runs.daemon import build_risk, fill_costs, paper_fill_cost


class _Exchange:
    """The one method of the exchange executor the cost needs, answering as ccxt's markets would."""

    def taker_fee_rate(self, symbol: str) -> Decimal | None:
        return {"BTC/USDT": Decimal("0.00075"), "ETH/USDT": None}.get(symbol)


def test_paper_costs_are_the_fee_plus_slippage() -> None:
    s = Settings().with_overrides(paper={"taker_fee_bps": "7", "slippage_bps": "3"})
    assert paper_fill_cost(s) == pytest.approx(0.001)
    assert fill_costs(s, object()) == pytest.approx(0.001)
    assert build_risk(s, None).costs == pytest.approx(0.001)


def test_live_costs_take_the_exchanges_fee_per_symbol_and_fall_back_to_the_configured_one() -> None:
    s = Settings().with_overrides(market={"symbols": ["BTC/USDT", "ETH/USDT"]},
                                  paper={"taker_fee_bps": "10", "slippage_bps": "2"})
    costs = fill_costs(s, _Exchange())
    assert costs == {"BTC/USDT": pytest.approx(0.00095), "ETH/USDT": pytest.approx(0.0012)}


@pytest.mark.parametrize("gate,loaded", [({}, True),                                   # net_edge, band_bars 720
                                         ({"band_bars": 0}, False),                    # the one-bar rule: no band
                                         ({"rule": "strength"}, False)])
def test_the_band_code_is_loaded_with_the_risk_manager_only_when_the_gate_uses_it(
        gate: dict[str, object], loaded: bool) -> None:
    # Loaded at start-up, not at the first bar with a signal (which a live daemon would hold for it).
    from risk import band

    band._kernel.cache_clear()
    build_risk(Settings().with_overrides(risk={"gate": gate}), None)
    assert band._kernel.cache_info().currsize == int(loaded)
