"""Round trips from fills: by hand, and summed over trips they are each symbol's PnL to the last unit."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.analytics.trades import TradeFill, bars_with_fill, round_trips, trade_stats, traded_notional
from bot.reporting.run_report import symbol_pnl

D = Decimal
BTC, ETH = "BTC/USDT", "ETH/USDT"


def fill(bar: int, side: str, qty: str, price: str, fee: str = "0", symbol: str = BTC, reason: str = "signal"):
    return TradeFill(symbol, bar, side, D(qty), D(price), D(fee), reason)


def test_a_long_scaled_in_and_out_then_a_short_by_hand() -> None:
    fills = [fill(1, "buy", "1", "100", "0.1"), fill(2, "buy", "1", "110", "0.1"),    # avg cost 105
             fill(3, "sell", "1", "120", "0.1"), fill(4, "sell", "1", "90", "0.1"),    # flat: +15 − 15 − fees
             fill(5, "sell", "2", "50", "0.2"), fill(7, "buy", "2", "40", "0.2")]
    trips = round_trips(fills, [(BTC, 6, D("-0.5"))])
    long, short = trips
    assert (long.direction, long.open_ms, long.close_ms, long.qty) == (1, 1, 4, D(2))
    assert (long.entry_price, long.exit_price, long.fees, long.pnl) == (D(105), D(105), D("0.4"), D("-0.4"))
    assert (short.direction, short.entry_price, short.exit_price, short.funding) == (-1, D(50), D(40), D("-0.5"))
    assert short.pnl == D(20) - D("0.4") - D("0.5")
    stats = trade_stats(trips)
    assert (stats.trips, stats.wins, stats.win_rate) == (2, 1, 0.5)
    assert stats.profit_factor == float(D("19.1") / D("0.4"))
    assert stats.expectancy == (D("19.1") - D("0.4")) / 2
    assert traded_notional(fills) == {BTC: D(100 + 110 + 120 + 90 + 100 + 80)}


def test_a_flip_splits_its_fee_and_an_open_trip_is_marked() -> None:
    fills = [fill(1, "buy", "2", "100", "0.2"), fill(2, "sell", "5", "110", "0.5"), fill(3, "buy", "1", "100", "0.1")]
    closed, open_ = round_trips(fills, final_marks={BTC: D(90)})
    assert closed.closed and closed.fees == D("0.2") + D("0.5") * 2 / 5 and closed.pnl == 20 - closed.fees
    assert not open_.closed and open_.direction == -1 and open_.entry_price == D(110) and open_.qty == D(3)
    assert open_.fees == D("0.3") + D("0.1")
    assert open_.pnl == 3 * 110 - 100 - open_.fees - 2 * 90    # short 3 @ 110, covered 1 @ 100, 2 marked at 90
    assert trade_stats([open_]).trips == 0 and trade_stats([open_]).win_rate is None


def test_a_liquidation_closes_the_trip_and_funding_after_the_close_stays_with_it() -> None:
    fills = [fill(1, "buy", "1", "100"), fill(3, "sell", "1", "60", "0.3", reason="liquidation")]
    (trip,) = round_trips(fills, [(BTC, 2, D("-1")), (BTC, 3, D("-2"))])
    assert trip.liquidated and trip.funding == D(-3) and trip.pnl == D(-40) - D("0.3") - 3


steps = st.lists(st.tuples(st.sampled_from([BTC, ETH]), st.sampled_from(["buy", "sell"]),
                           st.decimals(min_value=D("0.001"), max_value=D(50), places=3),
                           st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
                           st.decimals(min_value=D(0), max_value=D(2), places=8),
                           st.decimals(min_value=D(-1), max_value=D(1), places=4)),
                 min_size=1, max_size=40)


@given(steps, st.decimals(min_value=D(1), max_value=D(1000), places=2))
@settings(max_examples=300, deadline=None)
def test_round_trip_pnl_sums_to_the_symbol_pnl_exactly(plan, final_mark: Decimal) -> None:
    fills, funding, qty = [], [], {BTC: D(0), ETH: D(0)}
    for bar, (symbol, side, q, price, fee, fund) in enumerate(plan):
        if qty[symbol] != 0:
            funding.append((symbol, bar, fund))     # funding is paid only on a position
        fills.append(TradeFill(symbol, bar, side, q, price, fee))
        qty[symbol] += q if side == "buy" else -q
    final = {s: (q, final_mark) for s, q in qty.items()}
    expected = {s.symbol: s.pnl for s in symbol_pnl(
        [(f.symbol, f.side, f.qty, f.price, f.fee) for f in fills], final, [(s, a) for s, _, a in funding])}
    trips = round_trips(fills, funding, {s: final_mark for s in qty})
    with localcontext(prec=60):
        for symbol in (BTC, ETH):
            mine = [t for t in trips if t.symbol == symbol]
            assert sum((t.pnl for t in mine), D(0)) == expected.get(symbol, D(0))
            assert sum(1 for t in mine if not t.closed) == (qty[symbol] != 0)
            assert sum((t.fees for t in mine), D(0)) == sum((f.fee for f in fills if f.symbol == symbol), D(0))


def test_bars_with_fill_counts_each_bar_once() -> None:
    d = Decimal
    fills = [TradeFill("BTC/USDT", 1, "buy", d(1), d(10), d(0)), TradeFill("ETH/USDT", 1, "sell", d(1), d(10), d(0)),
             TradeFill("BTC/USDT", 3, "sell", d(1), d(11), d(0), "liquidation")]
    assert bars_with_fill(fills) == 2 and bars_with_fill([]) == 0
