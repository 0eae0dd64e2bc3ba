"""The paper executor: fill timing, slippage, fees and exact accounting."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import PaperSettings
from bot.errors import ExecutionError
from bot.events import Candle, OrderFilled, Side, SubmitOrder
from bot.execution import Executor
from bot.execution.fills import fee_for, fill_price
from bot.execution.paper import PaperAccount, PaperExecutor, PaperSnapshot
from risk.qty import rounded_qty

BTC, ETH = "BTC/USDT", "ETH/USDT"
HOUR = 3_600_000
D = Decimal


def candle(symbol: str, open_ms: int, open_: Decimal | str) -> Candle:
    o = D(open_)
    return Candle(symbol=symbol, open_ms=open_ms, close_ms=open_ms + HOUR - 1, open=o, high=o, low=o, close=o,
                  volume=D(1))


def order(symbol: str, bar_ms: int, side: Side, qty: Decimal | str, oid: str | None = None) -> SubmitOrder:
    return SubmitOrder(order_id=oid or f"{symbol}-{bar_ms}", symbol=symbol, bar_ms=bar_ms, side=side, qty=D(qty))


def account(cash: str = "10000", fee_bps: str = "0", slippage_bps: str = "0", fee_step: str = "0.01",
            **kw: object) -> PaperAccount:
    return PaperAccount(D(cash), D(fee_bps), D(slippage_bps), D(fee_step), **kw)  # type: ignore[arg-type]


def trade(acct: PaperAccount, symbol: str, bar: int, side: Side, qty: Decimal | str, open_: Decimal | str
          ) -> OrderFilled:
    """Decide at ``bar`` and fill at the open of ``bar + 1``."""
    acct.submit(order(symbol, bar * HOUR, side, qty))
    fill = acct.fill_due(candle(symbol, (bar + 1) * HOUR, open_))
    assert fill is not None
    return fill


# -- strategies ----------------------------------------------------------------------------------

prices = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4, allow_nan=False, allow_infinity=False)
qtys = st.decimals(min_value=D("0.00001"), max_value=D("1000"), places=5, allow_nan=False, allow_infinity=False)
bps = st.decimals(min_value=D("0"), max_value=D("500"), places=2, allow_nan=False, allow_infinity=False)
fee_steps = st.sampled_from([D("1E-8"), D("0.001"), D("0.01"), D("0.03"), D("0.25"), D("1")])
sides = st.sampled_from(list(Side))
symbols = st.sampled_from([BTC, ETH])


@dataclass(frozen=True)
class Step:
    symbol: str
    side: Side
    qty: Decimal
    open: Decimal
    mark: Decimal


steps = st.lists(st.builds(Step, symbols, sides, qtys, prices, prices), max_size=25)
accounts = st.builds(
    lambda cash, fee, slip, step: PaperAccount(cash, fee, slip, step),
    st.decimals(min_value=D("1"), max_value=D("1e12"), places=2, allow_nan=False, allow_infinity=False),
    bps, bps, fee_steps,
)


def run_steps(acct: PaperAccount, todo: list[Step], first_bar: int = 0) -> list[object]:
    """Trade and mark one step per bar; return every fill and mark for comparison."""
    seen: list[object] = []
    for i, s in enumerate(todo):
        bar = first_bar + i
        seen.append(trade(acct, s.symbol, bar, s.side, s.qty, s.open))
        seen.append(acct.mark((bar + 1) * HOUR, {s.symbol: s.mark}))
    return seen


# -- accounting properties -----------------------------------------------------------------------

@given(accounts, steps)
def test_cash_positions_and_equity_reconcile_exactly(acct: PaperAccount, todo: list[Step]) -> None:
    cash = Fraction(acct.cash)
    qty: dict[str, Fraction] = {}
    marks: dict[str, Fraction] = {}
    for i, s in enumerate(todo):
        before = acct.cash
        fill = trade(acct, s.symbol, i, s.side, s.qty, s.open)
        signed = s.qty if s.side is Side.BUY else -s.qty
        # The cash change of a fill is exactly −signed notional − fee.
        assert acct.cash - before == -signed * fill.price - fill.fee
        assert Fraction(acct.cash) - Fraction(before) == -Fraction(signed) * Fraction(fill.price) - Fraction(fill.fee)
        cash += -Fraction(signed) * Fraction(fill.price) - Fraction(fill.fee)
        qty[s.symbol] = qty.get(s.symbol, Fraction(0)) + Fraction(signed)
        marks[s.symbol] = Fraction(s.mark)
        eq = acct.mark((i + 1) * HOUR, {s.symbol: s.mark})
        assert Fraction(eq.cash) == cash == Fraction(acct.cash)
        assert Fraction(eq.equity) == cash + sum((q * marks[sym] for sym, q in qty.items()), Fraction(0))
        assert Fraction(eq.equity) == Fraction(eq.cash) + sum(
            (Fraction(p.qty) * Fraction(p.mark) for p in eq.positions), Fraction(0))
        assert [p.symbol for p in eq.positions] == sorted(sym for sym, q in qty.items() if q != 0)
        assert all(p.qty != 0 for p in eq.positions)
        for sym, q in qty.items():
            assert Fraction(acct.position(sym)) == q
    assert acct.last_equity is not None or not todo


@given(prices, qtys, sides, bps, bps, fee_steps)
def test_fee_rounds_up_to_step_and_slippage_goes_against_us(
        open_: Decimal, qty: Decimal, side: Side, fee_bps: Decimal, slip: Decimal, step: Decimal) -> None:
    acct = PaperAccount(D("1000"), fee_bps, slip, step)
    fill = trade(acct, BTC, 0, side, qty, open_)
    rate = Fraction(slip) / 10_000
    expected_price = Fraction(open_) * (1 + rate if side is Side.BUY else 1 - rate)
    assert Fraction(fill.price) == expected_price
    if side is Side.BUY:
        assert fill.price >= open_
    else:
        assert fill.price <= open_
    exact_fee = Fraction(qty) * Fraction(fill.price) * Fraction(fee_bps) / 10_000
    assert fill.fee >= 0
    assert exact_fee <= Fraction(fill.fee) < exact_fee + Fraction(step)
    assert Fraction(fill.fee) / Fraction(step) == int(Fraction(fill.fee) / Fraction(step))
    assert fill.fee == fee_for(qty, fill.price, fee_bps, step)
    assert fill.price == fill_price(open_, side, slip)


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=0, max_value=10**6), sides, qtys, prices)
def test_an_order_never_fills_on_its_decision_bar_or_earlier(
        bar: int, back: int, side: Side, qty: Decimal, open_: Decimal) -> None:
    acct = account()
    o = order(BTC, bar * HOUR, side, qty)
    acct.submit(o)
    early = candle(BTC, (bar - min(back, bar)) * HOUR, open_)
    assert acct.fill_due(early) is None
    with pytest.raises(ExecutionError, match="later bar"):
        acct.execute(o.order_id, early)
    assert acct.open_orders() == (o,)
    assert acct.cash == D("10000") and acct.position(BTC) == 0
    fill = acct.fill_due(candle(BTC, (bar + 1) * HOUR, open_))
    assert fill is not None and fill.fill_bar_ms > fill.decision_bar_ms


@given(prices, qtys, sides)
def test_round_trip_without_costs_at_one_price_leaves_cash_unchanged(open_: Decimal, qty: Decimal, side: Side
                                                                     ) -> None:
    acct = account(cash="5000")
    back = Side.SELL if side is Side.BUY else Side.BUY
    trade(acct, BTC, 0, side, qty, open_)
    trade(acct, BTC, 1, back, qty, open_)
    assert acct.cash == D("5000")
    assert acct.position(BTC) == 0 and acct.avg_price(BTC) == 0 and acct.positions() == {}


@given(accounts, steps, steps)
def test_snapshot_restore_behaves_identically_afterwards(acct: PaperAccount, before: list[Step],
                                                         after: list[Step]) -> None:
    run_steps(acct, before)
    pending = order(ETH, len(before) * HOUR + 7, Side.BUY, D("1"), oid="pending")
    acct.submit(pending)
    snap = acct.snapshot()
    twin = PaperAccount.restore(snap, fee_bps=acct.fee_bps, slippage_bps=acct.slippage_bps, fee_step=acct.fee_step)
    assert twin.snapshot() == snap
    assert twin.open_orders() == (pending,)
    assert acct.cancel_open("test") == twin.cancel_open("test") == [("pending", "test")]
    first = len(before) + 1
    assert repr(run_steps(acct, after, first)) == repr(run_steps(twin, after, first))
    assert acct.snapshot() == twin.snapshot()


@given(st.decimals(min_value=D("-1e6"), max_value=D("1e6"), places=8, allow_nan=False, allow_infinity=False),
       st.sampled_from([D("0.00001"), D("0.001"), D("0.5"), D("3"), D("0.03")]))
def test_rounded_qty_rounds_toward_zero_to_a_whole_step(qty: Decimal, step: Decimal) -> None:
    r = rounded_qty(qty, step)
    units = Fraction(r) / Fraction(step)
    assert units.denominator == 1
    assert abs(r) <= abs(qty) and abs(qty) - abs(r) < step
    assert r == 0 or (r > 0) == (qty > 0)


# -- scenarios computed by hand ------------------------------------------------------------------

def test_long_round_trip_pnl_by_hand() -> None:
    acct = account(fee_bps="10", slippage_bps="10", fee_step="0.01")
    buy = trade(acct, BTC, 0, Side.BUY, "2", "100")
    # 100 × 1.001 = 100.1; notional 200.2; fee 0.2002 → 0.21
    assert (buy.price, buy.fee) == (D("100.1"), D("0.21"))
    assert acct.cash == D("9799.59")
    assert acct.positions() == {BTC: (D("2"), D("100.1"))}
    sell = trade(acct, BTC, 1, Side.SELL, "2", "110")
    # 110 × 0.999 = 109.89; notional 219.78; fee 0.21978 → 0.22
    assert (sell.price, sell.fee) == (D("109.89"), D("0.22"))
    assert acct.cash - D("10000") == D("219.78") - D("200.2") - D("0.21") - D("0.22") == D("19.15")
    assert acct.positions() == {}


def test_short_round_trip_pnl_by_hand() -> None:
    acct = account(fee_bps="10", slippage_bps="10", fee_step="0.01")
    sell = trade(acct, ETH, 0, Side.SELL, "3", "50")
    # 50 × 0.999 = 49.95; notional 149.85; fee 0.14985 → 0.15
    assert (sell.price, sell.fee) == (D("49.95"), D("0.15"))
    assert acct.position(ETH) == D("-3") and acct.avg_price(ETH) == D("49.95")
    eq = acct.mark(HOUR, {ETH: D("45")})
    assert eq.equity == D("10149.70") - 3 * D("45") == D("10014.70")
    buy = trade(acct, ETH, 1, Side.BUY, "3", "40")
    # 40 × 1.001 = 40.04; notional 120.12; fee 0.12012 → 0.13
    assert (buy.price, buy.fee) == (D("40.04"), D("0.13"))
    assert acct.cash - D("10000") == D("29.45")


def test_average_price_increase_reduce_flip_and_flat() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    trade(acct, BTC, 1, Side.BUY, "3", "200")
    assert acct.positions() == {BTC: (D("4"), D("175"))}  # (100 + 600) / 4
    trade(acct, BTC, 2, Side.SELL, "1", "300")
    assert acct.positions() == {BTC: (D("3"), D("175"))}  # a reduction keeps the entry price
    trade(acct, BTC, 3, Side.SELL, "5", "120")
    assert acct.positions() == {BTC: (D("-2"), D("120"))}  # a flip starts afresh at the fill price
    trade(acct, BTC, 4, Side.SELL, "2", "60")
    assert acct.positions() == {BTC: (D("-4"), D("90"))}
    trade(acct, BTC, 5, Side.BUY, "4", "80")
    assert acct.position(BTC) == 0 and acct.avg_price(BTC) == 0
    # −100 − 600 + 300 + 600 + 120 − 320 = 0
    assert acct.cash == D("10000")


# -- marking -------------------------------------------------------------------------------------

def test_marks_persist_for_absent_symbols_and_a_position_needs_a_mark() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    with pytest.raises(ExecutionError, match="BTC/USDT"):
        acct.mark(HOUR, {ETH: D("10")})
    assert acct.last_equity is None and acct.marks() == {}  # a refused mark changes nothing
    assert acct.mark(HOUR, {BTC: D("110")}).equity == D("10010")
    trade(acct, ETH, 1, Side.SELL, "2", "10")
    eq = acct.mark(2 * HOUR, {ETH: D("12")})
    assert [(p.symbol, p.qty, p.mark) for p in eq.positions] == [(BTC, D("1"), D("110")), (ETH, D("-2"), D("12"))]
    assert eq.equity == D("9920") + D("110") - D("24")
    assert acct.last_equity == eq


def test_mark_rejects_non_positive_or_non_finite_prices() -> None:
    acct = account()
    for bad in (D("0"), D("-1"), D("NaN"), D("Infinity")):
        with pytest.raises(ExecutionError, match="marks"):
            acct.mark(0, {BTC: bad})


# -- order validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "kwargs"), [
    ("qty", {"qty": D("0")}),
    ("qty", {"qty": D("-1")}),
    ("qty", {"qty": D("NaN")}),
    ("qty", {"qty": D("Infinity")}),
    ("qty", {"qty": 1.5}),
    ("symbol", {"symbol": ""}),
    ("symbol", {"symbol": 5}),
    ("symbol", {"symbol": "DOGE/USDT"}),
    ("side", {"side": "buy"}),
    ("bar_ms", {"bar_ms": 1.0}),
    ("bar_ms", {"bar_ms": True}),
    ("order_id", {"order_id": ""}),
])
def test_a_malformed_order_is_refused_naming_the_field(field: str, kwargs: dict[str, object]) -> None:
    acct = account(symbols=[BTC, ETH])
    base: dict[str, object] = {"order_id": "o1", "symbol": BTC, "bar_ms": 0, "side": Side.BUY, "qty": D("1")}
    with pytest.raises(ExecutionError, match=f"'{field}'"):
        acct.submit(SubmitOrder(**{**base, **kwargs}))  # type: ignore[arg-type]
    assert acct.open_orders() == ()


def test_one_open_order_per_symbol_until_cancelled() -> None:
    acct = account()
    acct.submit(order(BTC, 0, Side.BUY, "1", "a"))
    with pytest.raises(ExecutionError, match="already has open order 'a'"):
        acct.submit(order(BTC, 0, Side.SELL, "1", "b"))
    with pytest.raises(ExecutionError, match="order_id"):
        acct.submit(order(ETH, 0, Side.SELL, "1", "a"))
    acct.submit(order(ETH, 0, Side.SELL, "1", "c"))
    assert acct.cancel_open("flip", BTC) == [("a", "flip")]
    assert acct.cancel_open("none here", BTC) == []
    acct.submit(order(BTC, 0, Side.SELL, "1", "b"))
    assert [o.order_id for o in acct.open_orders()] == ["b", "c"]
    assert acct.cancel_open("shutdown") == [("b", "shutdown"), ("c", "shutdown")]
    assert acct.open_orders() == ()


def test_execute_refuses_another_symbol_or_a_bad_open() -> None:
    acct = account()
    acct.submit(order(BTC, 0, Side.BUY, "1", "a"))
    with pytest.raises(ExecutionError, match="ETH/USDT"):
        acct.execute("a", candle(ETH, HOUR, "10"))
    with pytest.raises(ExecutionError, match="'open'"):
        acct.execute("a", candle(BTC, HOUR, "0"))
    with pytest.raises(ExecutionError, match="not open"):
        acct.execute("zz", candle(BTC, HOUR, "10"))
    assert acct.cash == D("10000") and len(acct.open_orders()) == 1


def test_restoring_a_bad_state_is_refused() -> None:
    with pytest.raises(ExecutionError, match="qty"):
        account(positions={BTC: (D("NaN"), D("1"))})
    with pytest.raises(ExecutionError, match="avg_price"):
        account(positions={BTC: (D("1"), D("-1"))})
    with pytest.raises(ExecutionError, match="fee_step"):
        account(fee_step="0")
    with pytest.raises(ExecutionError, match="symbol"):
        account(open_orders=[order(BTC, 0, Side.BUY, "1", "a"), order(BTC, 0, Side.BUY, "1", "b")])
    assert account(positions={BTC: (D("0"), D("0"))}).positions() == {}


def test_from_settings_uses_the_paper_section() -> None:
    s = PaperSettings(initial_cash=D("500"), taker_fee_bps=D("7.5"), slippage_bps=D("1"), fee_step=D("0.001"))
    acct = PaperAccount.from_settings(s)
    assert (acct.cash, acct.fee_bps, acct.slippage_bps, acct.fee_step) == (D("500"), D("7.5"), D("1"), D("0.001"))
    resumed = PaperAccount.from_settings(s, snapshot=PaperSnapshot(cash=D("42"), positions={BTC: (D("1"), D("9"))},
                                                                   marks={BTC: D("10")}))
    assert resumed.cash == D("42") and resumed.mark(0, {}).equity == D("52")


# -- the async executor --------------------------------------------------------------------------

def test_paper_executor_is_an_executor() -> None:
    assert isinstance(PaperExecutor.from_settings(PaperSettings()), Executor)


@pytest.mark.asyncio
async def test_on_bar_fills_only_due_orders_of_each_candles_symbol() -> None:
    ex = PaperExecutor(account(fee_bps="10", fee_step="0.01"))
    await ex.submit(order(BTC, HOUR, Side.BUY, "1", "btc"))
    await ex.submit(order(ETH, 2 * HOUR, Side.SELL, "2", "eth"))
    # Bar 1 closes: the BTC order was decided at bar 1 itself, so nothing fills yet.
    assert await ex.on_bar([candle(BTC, HOUR, "100"), candle(ETH, HOUR, "10")]) == []
    fills = await ex.on_bar([candle(BTC, 2 * HOUR, "101"), candle(ETH, 2 * HOUR, "11")])
    assert [(f.order_id, f.price, f.fee, f.fill_bar_ms) for f in fills] == [("btc", D("101"), D("0.11"), 2 * HOUR)]
    assert [o.order_id for o in ex.open_orders()] == ["eth"]
    fills = await ex.on_bar([candle(ETH, 3 * HOUR, "12")])
    assert [(f.order_id, f.side, f.qty, f.price, f.decision_bar_ms) for f in fills] == [
        ("eth", Side.SELL, D("2"), D("12"), 2 * HOUR)]
    assert ex.position(BTC) == 1 and ex.position(ETH) == -2
    assert ex.cash == D("10000") - D("101") - D("0.11") + D("24") - D("0.03")
    eq = ex.mark(3 * HOUR, {BTC: D("102"), ETH: D("12")})
    assert eq.equity == ex.cash + D("102") - D("24") and ex.last_equity == eq
    assert ex.cancel_open("none") == [] and ex.snapshot() == ex.account.snapshot()
