"""The start-up reconciliation's comparisons: the book adopts the exchange's figures, exactly.

The I/O half (:func:`bot.execution.reconcile.reconcile` through the gateway) runs against the Binance
stubs in ``test_exchange_recovery.py`` and ``test_exchange_usdm.py``; here the pure half, as properties.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bot.execution.paper import PaperAccount
from bot.execution.reconcile import Differences, adjusted_book, balance_differences, position_differences

D = Decimal
BTC, ETH = "BTC/USDT", "ETH/USDT"
SYMBOLS = (BTC, ETH)
BASES = {BTC: "BTC", ETH: "ETH"}
ZERO = D(0)

amounts = st.decimals(min_value=D("-50"), max_value=D("50"), places=4)
balances = st.decimals(min_value=D("0"), max_value=D("50"), places=4)
cash = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2)
prices = st.decimals(min_value=D("0.01"), max_value=D("90000"), places=2)
symbols = st.sampled_from(SYMBOLS)
pending_trades = st.dictionaries(symbols, st.tuples(amounts, cash), max_size=2)


@st.composite
def books(draw: st.DrawFn, signed: bool) -> PaperAccount:
    held = draw(st.dictionaries(symbols, st.tuples(amounts if signed else balances, prices), max_size=2))
    positions = {s: (q, p) for s, (q, p) in held.items() if q != 0}
    marks = draw(st.dictionaries(symbols, prices, max_size=2))
    return PaperAccount(draw(cash), ZERO, ZERO, D("0.01"), positions=positions, marks=marks, symbols=SYMBOLS)


def pending_cash(pending: dict[str, tuple[Decimal, Decimal]]) -> Decimal:
    return sum((dc for _, dc in pending.values()), ZERO)


def pending_qty(pending: dict[str, tuple[Decimal, Decimal]], symbol: str) -> Decimal:
    return pending.get(symbol, (ZERO, ZERO))[0]


@given(books(signed=False), pending_trades, cash, st.dictionaries(st.sampled_from(["BTC", "ETH"]), balances))
def test_spot_book_plus_unlogged_trades_equals_the_exchange_balances(
        book: PaperAccount, pending: dict[str, tuple[Decimal, Decimal]], quote_balance: Decimal,
        base_balances: dict[str, Decimal]) -> None:
    totals = {"USDT": str(quote_balance), **{a: str(b) for a, b in base_balances.items()}}
    diff = balance_differences(book, pending, totals, BASES, "USDT")
    adopted = adjusted_book(book, diff, SYMBOLS)
    # Once the trades made while the bot was down are booked as fills, the book is the exchange's.
    assert adopted.cash + pending_cash(pending) == quote_balance
    for symbol, base in BASES.items():
        assert adopted.position(symbol) + pending_qty(pending, symbol) == base_balances.get(base, ZERO)
    # One line per figure that differed, and nothing rebuilt when nothing did.
    differing = [book.cash + pending_cash(pending) != quote_balance] + [
        book.position(s) + pending_qty(pending, s) != base_balances.get(b, ZERO) for s, b in BASES.items()]
    assert len(diff.lines) == sum(differing)
    assert (adopted is book) == (not any(differing))


@given(books(signed=True), pending_trades, cash, st.dictionaries(symbols, st.tuples(amounts, prices)))
def test_usdm_book_takes_the_exchange_positions_and_their_entry_prices(
        book: PaperAccount, pending: dict[str, tuple[Decimal, Decimal]], exchange_cash: Decimal,
        held: dict[str, tuple[Decimal, Decimal]]) -> None:
    held = {s: (q, e) for s, (q, e) in held.items() if q != 0}   # positionRisk lists open positions only
    diff = position_differences(book, pending, exchange_cash, held, SYMBOLS, "USDT")
    adopted = adjusted_book(book, diff, SYMBOLS)
    assert adopted.cash + pending_cash(pending) == exchange_cash
    for symbol in SYMBOLS:
        have, entry = held.get(symbol, (ZERO, ZERO))
        assert adopted.position(symbol) + pending_qty(pending, symbol) == have
        if symbol in diff.d_qty and adopted.position(symbol) != 0:
            assert adopted.avg_price(symbol) == (entry or book.avg_price(symbol) or book.marks().get(symbol, ZERO))
        elif symbol not in diff.d_qty:
            assert adopted.avg_price(symbol) == book.avg_price(symbol)


def test_a_spot_balance_found_while_flat_is_entered_at_the_last_mark_and_a_held_one_keeps_its_average() -> None:
    book = PaperAccount(D("1000"), ZERO, ZERO, D("0.01"), positions={BTC: (D("0.5"), D("40000"))},
                        marks={BTC: D("41000"), ETH: D("2500")}, symbols=SYMBOLS)
    diff = balance_differences(book, {}, {"USDT": "1000", "BTC": "0.75", "ETH": "2"}, BASES, "USDT")
    assert diff == Differences(diff.lines, ZERO, {BTC: D("0.25"), ETH: D("2")})
    assert [line.split(":")[0] for line in diff.lines] == [BTC, ETH]
    adopted = adjusted_book(book, diff, SYMBOLS)
    assert adopted.positions() == {BTC: (D("0.75"), D("40000")), ETH: (D("2"), D("2500"))}
    assert adopted.cash == D("1000")


def test_a_position_closed_on_the_exchange_leaves_the_book_flat() -> None:
    book = PaperAccount(D("10"), ZERO, ZERO, D("0.01"), positions={ETH: (D("-3"), D("2000"))}, symbols=SYMBOLS)
    diff = position_differences(book, {}, D("6010"), {}, SYMBOLS, "USDT")
    adopted = adjusted_book(book, diff, SYMBOLS)
    assert adopted.positions() == {} and adopted.cash == D("6010")
    assert len(diff.lines) == 2   # the cash and the ETH position
