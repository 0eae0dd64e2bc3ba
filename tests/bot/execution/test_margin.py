"""Isolated margin, liquidation at the bar's adverse extreme, liquidation fee and perpetual funding."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.config import PaperSettings
from bot.errors import ExecutionError
from bot.events import Candle, FundingPaid, OrderFilled, Side, SubmitOrder
from bot.execution.fills import FUNDING_INTERVAL_MS, fee_for, liquidation_price
from bot.execution.paper import PaperAccount, PaperExecutor, PaperSnapshot

BTC, ETH = "BTC/USDT", "ETH/USDT"
HOUR = 3_600_000
BAR = 4 * HOUR  # every other bar opens on a funding time
D = Decimal


def bar_candle(symbol: str, open_ms: int, open_: Decimal | str, low: Decimal | str | None = None,
               high: Decimal | str | None = None, close: Decimal | str | None = None) -> Candle:
    o = D(open_)
    lo = D(low) if low is not None else o
    hi = D(high) if high is not None else o
    return Candle(symbol=symbol, open_ms=open_ms, close_ms=open_ms + BAR - 1, open=o, high=hi, low=lo,
                  close=D(close) if close is not None else o, volume=D(1))


def account(cash: str = "10000", fee_bps: str = "0", slippage_bps: str = "0", fee_step: str = "0.01",
            mm: str = "0.005", liq_fee_bps: str = "50", funding: str = "0", **kw: object) -> PaperAccount:
    return PaperAccount(D(cash), D(fee_bps), D(slippage_bps), D(fee_step), maintenance_margin_rate=D(mm),
                        liquidation_fee_bps=D(liq_fee_bps), funding_rate_8h=D(funding), **kw)  # type: ignore[arg-type]


def trade(acct: PaperAccount, symbol: str, bar: int, side: Side, qty: Decimal | str, open_: Decimal | str,
          leverage: Decimal | str = "1") -> OrderFilled:
    """Decide at ``bar`` and fill at the open of ``bar + 1``."""
    acct.submit(SubmitOrder(f"{symbol}-{bar}", symbol, bar * BAR, side, D(qty), D(leverage)))
    fill = acct.fill_due(bar_candle(symbol, (bar + 1) * BAR, open_))
    assert fill is not None
    return fill


def signed(fill: OrderFilled) -> Fraction:
    return Fraction(fill.qty) if fill.side is Side.BUY else -Fraction(fill.qty)


# -- hand-worked cases ---------------------------------------------------------------------------

def test_long_liquidation_by_hand() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    assert acct.cash == D("9900") and acct.margin(BTC) == D("10")
    # (100 − 10) / (1 × 0.995) = 90.452261306532663316582914572864…, rounded up at 28 digits.
    liq = D("90.45226130653266331658291458")
    assert acct.liq_price(BTC) == liq
    eq = acct.mark(BAR, {BTC: D("95")})
    assert (eq.positions[0].margin, eq.positions[0].liq_price) == (D("10"), liq)
    assert acct.check_liquidations([bar_candle(BTC, 2 * BAR, "95", low="90.5", high="96")]) == []
    fills = acct.check_liquidations([bar_candle(BTC, 3 * BAR, "95", low="90.4", high="96")])
    # Fee: 90.4522… × 50 / 10 000 = 0.45226… → 0.46 (rounded up to the cent).
    assert fills == [OrderFilled(order_id=f"liq:{3 * BAR}:{BTC}", symbol=BTC, decision_bar_ms=3 * BAR,
                                 fill_bar_ms=3 * BAR, side=Side.SELL, qty=D("1"), price=liq, fee=D("0.46"),
                                 reason="liquidation")]
    assert acct.cash == D("9989.99226130653266331658291458")  # 9900 + p_liq − 0.46, exact
    assert Fraction(acct.cash) == 9900 + Fraction(liq) - Fraction("0.46")
    assert acct.positions() == {} and acct.margin(BTC) == 0 and acct.liq_price(BTC) is None
    assert 100 - Fraction(liq) <= 10  # the loss stays within M


def test_long_gap_through_the_liquidation_price_fills_at_the_open() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    fills = acct.check_liquidations([bar_candle(BTC, 2 * BAR, "85", low="84", high="86")])
    assert [(f.price, f.fee, f.reason) for f in fills] == [(D("85"), D("0.43"), "liquidation")]  # 0.425 → 0.43
    assert acct.cash == D("9900") + D("85") - D("0.43")  # the loss (15) exceeds M (10): a gap


def test_short_liquidation_by_hand() -> None:
    acct = account()
    trade(acct, ETH, 0, Side.SELL, "2", "50", leverage="5")
    assert acct.cash == D("10100") and acct.margin(ETH) == D("20")
    # (20 + 2 × 50) / (2 × 1.005) = 59.701492537313432835820895522388…, rounded down at 28 digits.
    liq = D("59.70149253731343283582089552")
    assert acct.liq_price(ETH) == liq
    assert acct.check_liquidations([bar_candle(ETH, 2 * BAR, "55", low="54", high="59.70")]) == []
    fills = acct.check_liquidations([bar_candle(ETH, 3 * BAR, "55", low="54", high="59.71")])
    # Fee: 2 × 59.7014… × 0.005 = 0.597014… → 0.60.
    assert [(f.order_id, f.side, f.qty, f.price, f.fee, f.decision_bar_ms, f.fill_bar_ms) for f in fills] == [
        (f"liq:{3 * BAR}:{ETH}", Side.BUY, D("2"), liq, D("0.60"), 3 * BAR, 3 * BAR)]
    assert acct.cash == D("9979.99701492537313432835820896")  # 10100 − 2 × p_liq − 0.60, exact
    assert Fraction(acct.cash) == 10100 - 2 * Fraction(liq) - Fraction("0.60")
    assert 2 * (Fraction(liq) - 50) <= 20 and acct.positions() == {}


def test_short_gap_fills_at_the_open() -> None:
    acct = account(liq_fee_bps="0")
    trade(acct, ETH, 0, Side.SELL, "2", "50", leverage="5")
    fills = acct.check_liquidations([bar_candle(ETH, 2 * BAR, "70", low="69", high="75")])
    assert [(f.price, f.fee) for f in fills] == [(D("70"), D("0"))]
    assert acct.cash == D("10100") - D("140")


def test_margin_on_open_add_reduce_flip_and_flat() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    assert acct.margin(BTC) == D("10")
    trade(acct, BTC, 1, Side.BUY, "1", "200", leverage="4")
    assert (acct.avg_price(BTC), acct.margin(BTC)) == (D("150"), D("60"))  # 10 + 200 / 4
    trade(acct, BTC, 2, Side.SELL, "1", "300", leverage="50")  # a reduction ignores the order's leverage
    assert (acct.avg_price(BTC), acct.margin(BTC)) == (D("150"), D("30"))  # 60 × 1/2
    trade(acct, BTC, 3, Side.SELL, "3", "120", leverage="2")
    assert (acct.position(BTC), acct.avg_price(BTC), acct.margin(BTC)) == (D("-2"), D("120"), D("120"))
    trade(acct, BTC, 4, Side.BUY, "2", "100")
    assert acct.positions() == {} and acct.margin(BTC) == 0 and acct.snapshot().margins == {}


def test_leverage_one_long_stays_fully_collateralised_through_averaging() -> None:
    acct = account(mm="0.5")
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    trade(acct, BTC, 1, Side.BUY, "2", "101")  # avg 100.666… is rounded; the margin follows it exactly
    assert acct.margin(BTC) == 3 * acct.avg_price(BTC) and acct.liq_price(BTC) is None
    trade(acct, BTC, 2, Side.SELL, "1", "90")
    assert acct.margin(BTC) == 2 * acct.avg_price(BTC) and acct.liq_price(BTC) is None
    assert acct.check_liquidations([bar_candle(BTC, 4 * BAR, "1", low="0.00000001", high="1")]) == []
    assert acct.mark(4 * BAR, {BTC: D("1")}).positions[0].liq_price is None


def test_leverage_one_short_is_liquidated_near_twice_its_entry() -> None:
    acct = account(mm="0")
    trade(acct, ETH, 0, Side.SELL, "1", "50")
    assert acct.margin(ETH) == D("50") and acct.liq_price(ETH) == D("100")


def test_liquidation_leaves_open_orders_and_other_symbols_alone() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    trade(acct, ETH, 0, Side.BUY, "1", "10", leverage="10")
    pending = SubmitOrder("pending", BTC, 5 * BAR, Side.BUY, D("1"))
    acct.submit(pending)
    fills = acct.check_liquidations([bar_candle(BTC, 5 * BAR, "95", low="80"), bar_candle(ETH, 5 * BAR, "10")])
    assert [f.symbol for f in fills] == [BTC]
    assert acct.open_orders() == (pending,) and acct.position(ETH) == 1


def test_no_position_or_a_bad_candle() -> None:
    acct = account()
    assert acct.check_liquidations([bar_candle(BTC, 0, "1", low="0.5")]) == []
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    with pytest.raises(ExecutionError, match="'low'"):
        acct.check_liquidations([bar_candle(BTC, 2 * BAR, "95", low="NaN")])
    assert acct.position(BTC) == 1


@pytest.mark.parametrize("leverage", [D("0.5"), D("0"), D("-2"), D("125.01"), D("NaN"), D("Infinity"), 2, 2.0])
def test_a_bad_leverage_is_refused_naming_the_field(leverage: object) -> None:
    acct = account()
    with pytest.raises(ExecutionError, match="'leverage'"):
        acct.submit(SubmitOrder("o", BTC, 0, Side.BUY, D("1"), leverage))  # type: ignore[arg-type]
    acct.submit(SubmitOrder("o", BTC, 0, Side.BUY, D("1"), D("125")))
    assert acct.open_orders()[0].leverage == 125


@pytest.mark.parametrize(("name", "kw"), [
    ("maintenance_margin_rate", {"mm": "0.51"}),
    ("maintenance_margin_rate", {"mm": "-0.01"}),
    ("liquidation_fee_bps", {"liq_fee_bps": "1001"}),
    ("funding_rate_8h", {"funding": "0.02"}),
    ("funding_rate_8h", {"funding": "NaN"}),
])
def test_bad_margin_settings_are_refused(name: str, kw: dict[str, str]) -> None:
    with pytest.raises(ExecutionError, match=name):
        account(**kw)  # type: ignore[arg-type]


# -- funding -------------------------------------------------------------------------------------

def test_funding_signs_and_amounts_by_hand() -> None:
    acct = account(funding="0.0001")
    trade(acct, BTC, 0, Side.BUY, "2", "100")
    trade(acct, ETH, 0, Side.SELL, "3", "10")
    before = acct.cash
    paid = acct.apply_funding(2 * BAR, {BTC: D("100"), ETH: D("10")})  # 8 h: a funding time
    assert 2 * BAR % FUNDING_INTERVAL_MS == 0
    assert paid == [FundingPaid(BTC, 2 * BAR, D("2"), D("100"), D("0.0001"), D("-0.0200")),
                    FundingPaid(ETH, 2 * BAR, D("-3"), D("10"), D("0.0001"), D("0.0030"))]
    assert acct.cash == before - D("0.02") + D("0.003")
    assert acct.margin(BTC) == D("200")  # funding settles in cash; the margin is unchanged


def test_negative_funding_pays_the_long() -> None:
    acct = account(funding="-0.0005")
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    [paid] = acct.apply_funding(0, {BTC: D("120")})
    assert paid.amount == D("0.06") and acct.cash == D("9900.06")


def test_funding_only_at_eight_hour_boundaries_and_never_at_rate_zero() -> None:
    acct = account(funding="0.001")
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    for bar_ms in (HOUR, BAR, 7 * HOUR, FUNDING_INTERVAL_MS + 1):
        assert acct.apply_funding(bar_ms, {BTC: D("100")}) == []
    assert acct.cash == D("9900")
    assert len(acct.apply_funding(3 * FUNDING_INTERVAL_MS, {BTC: D("100")})) == 1
    flat = account(funding="0.001")
    assert flat.apply_funding(0, {}) == []
    off = account()
    trade(off, BTC, 0, Side.BUY, "1", "100")
    assert off.apply_funding(0, {BTC: D("100")}) == [] and off.cash == D("9900")


def test_funding_falls_back_to_the_last_mark_and_needs_one() -> None:
    acct = account(funding="0.001")
    trade(acct, BTC, 0, Side.BUY, "1", "100")
    with pytest.raises(ExecutionError, match="BTC/USDT"):
        acct.apply_funding(0, {})
    assert acct.cash == D("9900")
    acct.mark(BAR, {BTC: D("50")})
    assert [p.mark for p in acct.apply_funding(0, {})] == [D("50")]
    with pytest.raises(ExecutionError, match="marks"):
        acct.apply_funding(0, {BTC: D("0")})


# -- snapshot and restore ------------------------------------------------------------------------

def test_snapshot_carries_margins_and_a_missing_margin_means_fully_collateralised() -> None:
    acct = account()
    trade(acct, BTC, 0, Side.BUY, "1", "100", leverage="10")
    snap = acct.snapshot()
    assert snap.margins == {BTC: D("10")}
    twin = PaperAccount.restore(snap, fee_bps=D("0"), slippage_bps=D("0"), fee_step=D("0.01"))
    assert twin.snapshot() == snap and twin.liq_price(BTC) == acct.liq_price(BTC)
    # Positional construction (as the daemon does) leaves margins empty.
    old = PaperSnapshot(D("1000"), {BTC: (D("2"), D("100")), ETH: (D("-1"), D("10"))}, {BTC: D("100")})
    resumed = PaperAccount.restore(old, fee_bps=D("0"), slippage_bps=D("0"), fee_step=D("0.01"),
                                   maintenance_margin_rate=D("0"))
    assert resumed.snapshot().margins == {BTC: D("200"), ETH: D("10")}
    assert resumed.liq_price(BTC) is None and resumed.liq_price(ETH) == D("20")


def test_restoring_bad_margins_is_refused() -> None:
    with pytest.raises(ExecutionError, match="margins"):
        account(margins={BTC: D("1")})  # no such position
    with pytest.raises(ExecutionError, match="margins"):
        account(positions={BTC: (D("1"), D("1"))}, margins={BTC: D("-1")})


def test_from_settings_reads_the_margin_keys() -> None:
    s = PaperSettings(maintenance_margin_rate=D("0.01"), liquidation_fee_bps=D("20"), funding_rate_8h=D("0.0002"))
    acct = PaperAccount.from_settings(s)
    assert (acct.maintenance_margin_rate, acct.liquidation_fee_bps, acct.funding_rate_8h) == (
        D("0.01"), D("20"), D("0.0002"))


@pytest.mark.asyncio
async def test_paper_executor_liquidates_and_settles_funding() -> None:
    ex = PaperExecutor(account(funding="0.001"))
    await ex.submit(SubmitOrder("o", BTC, 0, Side.BUY, D("1"), D("20")))
    assert [f.order_id for f in await ex.on_bar([bar_candle(BTC, FUNDING_INTERVAL_MS, "100", low="99")])] == ["o"]
    assert [p.amount for p in ex.apply_funding(FUNDING_INTERVAL_MS, {BTC: D("100")})] == [D("-0.100")]
    assert await ex.liquidate([bar_candle(BTC, FUNDING_INTERVAL_MS, "100", low="99")]) == []
    [liq] = await ex.liquidate([bar_candle(BTC, FUNDING_INTERVAL_MS + BAR, "100", low="90")])
    assert liq.reason == "liquidation" and ex.position(BTC) == 0


# -- properties ----------------------------------------------------------------------------------

prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False)
qtys = st.decimals(min_value=D("0.001"), max_value=D("100"), places=3, allow_nan=False, allow_infinity=False)
leverages = st.decimals(min_value=D("1"), max_value=D("125"), places=1, allow_nan=False, allow_infinity=False)
mm_rates = st.decimals(min_value=D("0"), max_value=D("0.05"), places=4, allow_nan=False, allow_infinity=False)
bps = st.decimals(min_value=D("0"), max_value=D("100"), places=1, allow_nan=False, allow_infinity=False)
funding_rates = st.decimals(min_value=D("-0.01"), max_value=D("0.01"), places=5, allow_nan=False,
                            allow_infinity=False)
fee_steps = st.sampled_from([D("1E-8"), D("0.01"), D("0.25")])
sides = st.sampled_from(list(Side))
symbols = st.sampled_from([BTC, ETH])
down = st.decimals(min_value=D("0.3"), max_value=D("1"), places=3, allow_nan=False, allow_infinity=False)
up = st.decimals(min_value=D("1"), max_value=D("2"), places=3, allow_nan=False, allow_infinity=False)
accounts = st.builds(
    lambda fee, slip, step, mm, liq_fee, rate: PaperAccount(
        D("100000"), fee, slip, step, maintenance_margin_rate=mm, liquidation_fee_bps=liq_fee,
        funding_rate_8h=rate),
    bps, bps, fee_steps, mm_rates, bps, funding_rates,
)


@dataclass(frozen=True)
class Step:
    symbol: str
    side: Side
    qty: Decimal
    leverage: Decimal
    open: Decimal
    low: Decimal   # factor of the open
    high: Decimal  # factor of the open


steps = st.lists(st.builds(Step, symbols, sides, qtys, leverages, prices, down, up), max_size=20)


def play(acct: PaperAccount, todo: list[Step], first_bar: int = 0) -> list[object]:
    """One order per bar, then funding, the liquidation check and the mark; check every identity on the way."""
    cash = Fraction(acct.cash)
    qty = {s: Fraction(q) for s, (q, _) in acct.positions().items()}
    marks = {s: Fraction(m) for s, m in acct.marks().items()}
    seen: list[object] = []
    for i, s in enumerate(todo):
        bar = first_bar + i
        acct.submit(SubmitOrder(f"o{bar}", s.symbol, bar * BAR, s.side, s.qty, s.leverage))
        c = bar_candle(s.symbol, (bar + 1) * BAR, s.open, low=s.open * s.low, high=s.open * s.high,
                       close=s.open * s.low)
        fill = acct.fill_due(c)
        assert fill is not None
        paid = acct.apply_funding(c.open_ms, {s.symbol: c.open})
        for p in paid:
            assert Fraction(p.amount) == -qty_after(qty, fill, p.symbol) * Fraction(p.mark) * Fraction(p.rate)
            cash += Fraction(p.amount)
        held = acct.positions().get(s.symbol)
        margin = acct.margin(s.symbol)
        liquidated = acct.check_liquidations([c])
        for f in [fill, *liquidated]:
            cash += -signed(f) * Fraction(f.price) - Fraction(f.fee)
            qty[f.symbol] = qty.get(f.symbol, Fraction(0)) + signed(f)
        for f in liquidated:
            assert held is not None and f.qty == abs(held[0]) and acct.position(s.symbol) == 0
            q, entry = Fraction(held[0]), Fraction(held[1])
            loss = q * (entry - Fraction(f.price))
            assert f.price == c.open or loss <= Fraction(margin)  # within M unless gapped through p_liq
        marks[s.symbol] = Fraction(c.close)
        eq = acct.mark(c.open_ms, {s.symbol: c.close})
        assert Fraction(eq.cash) == cash == Fraction(acct.cash)
        assert Fraction(eq.equity) == cash + sum((q * marks[sym] for sym, q in qty.items()), Fraction(0))
        assert Fraction(eq.equity) == Fraction(eq.cash) + sum(
            (Fraction(p.qty) * Fraction(p.mark) for p in eq.positions), Fraction(0))
        assert all(p.margin >= 0 for p in eq.positions)
        seen += [fill, paid, liquidated, eq]
    return seen


def qty_after(qty: dict[str, Fraction], fill: OrderFilled, symbol: str) -> Fraction:
    return qty.get(symbol, Fraction(0)) + (signed(fill) if fill.symbol == symbol else 0)


@given(accounts, steps)
def test_equity_identity_holds_through_leverage_liquidation_and_funding(acct: PaperAccount,
                                                                        todo: list[Step]) -> None:
    play(acct, todo)


@given(accounts, steps, steps)
def test_snapshot_restore_with_margins_behaves_identically(acct: PaperAccount, before: list[Step],
                                                          after: list[Step]) -> None:
    play(acct, before)
    snap = acct.snapshot()
    assert set(snap.margins) == set(snap.positions)
    twin = PaperAccount.restore(snap, fee_bps=acct.fee_bps, slippage_bps=acct.slippage_bps, fee_step=acct.fee_step,
                                maintenance_margin_rate=acct.maintenance_margin_rate,
                                liquidation_fee_bps=acct.liquidation_fee_bps, funding_rate_8h=acct.funding_rate_8h)
    assert twin.snapshot() == snap
    first = len(before) + 1
    assert repr(play(acct, after, first)) == repr(play(twin, after, first))
    assert acct.snapshot() == twin.snapshot()


@given(prices, qtys, leverages, mm_rates, sides)
def test_liquidated_iff_the_adverse_extreme_reaches_the_liquidation_price(
        entry: Decimal, qty: Decimal, leverage: Decimal, mm: Decimal, side: Side) -> None:
    def fresh() -> PaperAccount:
        a = PaperAccount(D("0"), D("0"), D("0"), D("0.01"), maintenance_margin_rate=mm)
        trade(a, BTC, 0, side, qty, entry, leverage)
        return a

    acct = fresh()
    liq = acct.liq_price(BTC)
    assume(liq is not None)  # a long at leverage 1 (see the next test)
    assert liq == liquidation_price(acct.position(BTC), entry, acct.margin(BTC), mm)
    margin = Fraction(acct.margin(BTC))
    q, e, p = Fraction(acct.position(BTC)), Fraction(entry), Fraction(liq)
    # p_liq is the 28-digit rounding, toward the entry, of the root of M + q (p − E) = mm |q| p.
    exact = (q * e - margin) / (q * (1 - Fraction(mm))) if q > 0 else (margin - q * e) / (-q * (1 + Fraction(mm)))
    assert (p >= exact if q > 0 else p <= exact) and abs(p - exact) <= exact * Fraction(1, 10**27)
    beyond = liq.next_plus(Context(prec=40)) if q > 0 else liq.next_minus(Context(prec=40))
    safe_open = liq * 2 if q > 0 else liq / 2  # on the safe side of p_liq: no gap

    def reaching(extreme: Decimal) -> Candle:
        low, high = (extreme, safe_open) if q > 0 else (safe_open, extreme)
        return bar_candle(BTC, 2 * BAR, safe_open, low=low, high=high)

    near, at = reaching(beyond), reaching(liq)
    assert acct.check_liquidations([near]) == [] and acct.position(BTC) == q
    size = abs(acct.position(BTC))
    [fill] = acct.check_liquidations([at])
    assert (fill.price, fill.qty, fill.fee) == (liq, size, fee_for(size, liq, D(50), D("0.01")))
    assert acct.position(BTC) == 0
    assert q * (e - p) <= margin  # the loss at p_liq never exceeds the margin
    # A gap through p_liq fills at the worse open.
    gapped = fresh()
    gap_open = liq / 2 if q > 0 else liq * 2
    c = bar_candle(BTC, 2 * BAR, gap_open, low=gap_open / 2, high=gap_open * 2)
    [gap_fill] = gapped.check_liquidations([c])
    assert gap_fill.price == gap_open and gapped.position(BTC) == 0


@given(st.lists(st.tuples(sides, qtys, prices), min_size=1, max_size=10), mm_rates,
       st.decimals(min_value=D("0.01"), max_value=D("1"), places=2, allow_nan=False, allow_infinity=False))
def test_a_long_at_leverage_one_is_never_liquidated(orders: list[tuple[Side, Decimal, Decimal]], mm: Decimal,
                                                    low: Decimal) -> None:
    acct = PaperAccount(D("0"), D("0"), D("0"), D("0.01"), maintenance_margin_rate=mm)
    for bar, (side, qty, price) in enumerate(orders):
        if side is Side.SELL and qty >= acct.position(BTC):
            continue  # stay long: reduce only
        trade(acct, BTC, bar, side, qty, price)
        if acct.position(BTC) != 0:
            assert acct.liq_price(BTC) is None
            assert acct.check_liquidations([bar_candle(BTC, (bar + 1) * BAR, price, low=low)]) == []
