"""The run report against trade logs written through TradeStore, with PnL worked out by hand."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli.report import main
from bot.errors import DataError
from bot.events import EquityMarked, OrderFilled, PositionMarked, Side, SubmitOrder
from bot.reporting.run_report import format_report, load_report, max_drawdown
from bot.store.trade_store import BarRecord, TradeStore
from risk.events import Decision
from strategies.events import Forecast

H = 3_600_000
T0 = 1_704_067_200_000   # 2024-01-01 00:00 UTC
BTC, ETH = "BTC/USDT", "ETH/USDT"
D = Decimal


def record(bar_ms: int, cash: D, equity: D, positions: tuple[PositionMarked, ...] = (), *,
           orders: tuple[SubmitOrder, ...] = (), fills: tuple[OrderFilled, ...] = (),
           cancelled: tuple[tuple[str, str], ...] = (), actions: dict[str, str] | None = None) -> BarRecord:
    actions = actions or {}
    symbols = (BTC, ETH)
    return BarRecord(
        bar_ms=bar_ms, candles=(),
        forecasts=tuple(Forecast(s, bar_ms, 0.0, 0.01, "baseline") for s in symbols),
        decisions=tuple(Decision(s, bar_ms, actions.get(s, "none"), D(0), D(0), "test") for s in symbols),
        orders=orders, fills=fills, cancelled=cancelled,
        equity=EquityMarked(bar_ms, cash, equity, positions))


async def write_run(path: Path, records: list[BarRecord], run_id: str = "r1", now_ms: int = T0) -> None:
    async with await TradeStore.open(path) as store:
        session, _ = await store.begin_run(run_id, "paper", "{}", "cfg1", "test", now_ms)
        for r in records:
            assert await store.write_bar(run_id, r)
        await store.end_session(run_id, session, now_ms + 1, "done")


def hand_made_run() -> list[BarRecord]:
    """Buy 2 BTC and 10 ETH, sell the BTC at a loss, hold the ETH; equity worked out by hand."""
    buy_btc = SubmitOrder("o1", BTC, T0, Side.BUY, D(2))
    buy_eth = SubmitOrder("o2", ETH, T0 + H, Side.BUY, D(10))
    sell_btc = SubmitOrder("o3", BTC, T0 + 2 * H, Side.SELL, D(2))
    sell_eth = SubmitOrder("o4", ETH, T0 + 3 * H, Side.SELL, D(10))
    fill = OrderFilled
    return [
        # bar 0: 10000 cash, nothing held.
        record(T0, D(10000), D(10000), orders=(buy_btc,), actions={BTC: "buy"}),
        # bar 1: bought 2 BTC at 100, fee 0.2: cash 10000 - 200 - 0.2; BTC marked at 105.
        record(T0 + H, D("9799.8"), D("10009.8"),
               (PositionMarked(BTC, D(2), D(100), D(105)),),
               orders=(buy_eth,), actions={ETH: "buy"},
               fills=(fill("o1", BTC, T0, T0 + H, Side.BUY, D(2), D(100), D("0.2")),)),
        # bar 2: bought 10 ETH at 20, fee 0.2: cash 9599.6; BTC at 90, ETH at 21 -> 9599.6 + 180 + 210.
        record(T0 + 2 * H, D("9599.6"), D("9989.6"),
               (PositionMarked(BTC, D(2), D(100), D(90)), PositionMarked(ETH, D(10), D(20), D(21))),
               orders=(sell_btc,), actions={BTC: "sell"},
               fills=(fill("o2", ETH, T0 + H, T0 + 2 * H, Side.BUY, D(10), D(20), D("0.2")),)),
        # bar 3: sold 2 BTC at 95, fee 0.19: cash 9599.6 + 190 - 0.19; ETH at 18 -> 9789.41 + 180.
        record(T0 + 3 * H, D("9789.41"), D("9969.41"),
               (PositionMarked(BTC, D(0), D(0), D(96)), PositionMarked(ETH, D(10), D(20), D(18))),
               orders=(sell_eth,), actions={ETH: "sell"},
               fills=(fill("o3", BTC, T0 + 2 * H, T0 + 3 * H, Side.SELL, D(2), D(95), D("0.19")),)),
        # bar 4: the ETH sale is cancelled; ETH at 25 -> 9789.41 + 250.
        record(T0 + 4 * H, D("9789.41"), D("10039.41"),
               (PositionMarked(BTC, D(0), D(0), D(97)), PositionMarked(ETH, D(10), D(20), D(25))),
               cancelled=(("o4", "risk: sigma above limit"),)),
    ]


@pytest.mark.asyncio
async def test_report_of_a_hand_made_run(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    await write_run(path, hand_made_run())
    report = load_report(path)

    btc_pnl = -2 * D(100) - D("0.2") + 2 * D(95) - D("0.19")          # closed: -10.39
    eth_pnl = -10 * D(20) - D("0.2") + 10 * D(25)                      # open, marked at 25: 49.8
    assert {s.symbol: s.pnl for s in report.symbols} == {BTC: btc_pnl, ETH: eth_pnl}
    assert btc_pnl + eth_pnl == D("10039.41") - D(10000) == report.pnl
    assert {s.symbol: (s.fills, s.fees, s.final_qty) for s in report.symbols} == {
        BTC: (2, D("0.39"), D(0)), ETH: (1, D("0.2"), D(10))}

    assert (report.run_id, report.bars, report.sessions) == ("r1", 5, 1)
    assert (report.start_ms, report.end_ms) == (T0, T0 + 4 * H)
    assert (report.equity_start, report.equity_end, report.cash_end) == (D(10000), D("10039.41"), D("9789.41"))
    assert report.total_return_pct == D("0.3941")
    assert (report.trades, report.fees) == (3, D("0.59"))
    # Peak 10009.8 after bar 1, trough 9969.41 at bar 3 (the dip to 9989.6 in between is smaller).
    dd = report.max_drawdown
    assert dd is not None
    assert (dd.peak_ms, dd.peak_equity, dd.trough_ms, dd.trough_equity) == (
        T0 + H, D("10009.8"), T0 + 3 * H, D("9969.41"))
    with localcontext(prec=40):
        expected_pct = (D("10009.8") - D("9969.41")) / D("10009.8") * 100   # 0.4035...
    assert dd.pct.quantize(D("1e-20")) == expected_pct.quantize(D("1e-20"))
    assert dict(report.decisions) == {"buy": 2, "none": 6, "sell": 2}
    assert dict(report.orders) == {"cancelled": 1, "filled": 3}
    assert report.forecasts == 10
    assert report.reconciles and len(report.checks) == 4

    text = format_report(report)
    assert "2024-01-01 00:00 UTC to 2024-01-01 04:00 UTC" in text
    assert "10,000.00 -> 10,039.41" in text
    assert "+0.39%" in text
    assert "-0.40%  peak 10,009.80 at 2024-01-01 01:00 UTC, trough 9,969.41 at 2024-01-01 03:00 UTC" in text
    assert "sum(PnL) 39.41 = 10,039.41 - 10,000.00 = 39.41 (to the last unit)" in text
    assert "FAIL" not in text
    btc_line = next(line for line in text.splitlines() if line.startswith(BTC))
    # Symbol, fills, liquidations, fees, funding, final qty, mark, PnL.
    assert btc_line.split() == [BTC, "2", "0", "0.39", "0.00", "0", "97", "-10.39"]


@pytest.mark.asyncio
async def test_a_run_whose_books_do_not_balance_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    records = hand_made_run()
    # The last bar forgets 1 unit of cash: PnL no longer matches equity, and equity is not cash + positions.
    last = records[-1]
    records[-1] = record(last.bar_ms, D("9788.41"), D("10039.41"), last.equity.positions,
                         cancelled=last.cancelled)
    await write_run(path, records)
    report = load_report(path)
    assert not report.reconciles
    assert [c.ok for c in report.checks] == [True, False, True, True]
    assert "FAIL  last bar: equity = cash + sum(qty * mark)" in format_report(report)


@pytest.mark.asyncio
async def test_the_report_of_a_run_without_bars_says_so(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    await write_run(path, [])
    report = load_report(path, "r1")
    assert report.bars == 0 and report.max_drawdown is None and report.symbols == ()
    assert "No bars written yet" in format_report(report)


@pytest.mark.asyncio
async def test_the_most_recently_active_run_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    await write_run(path, hand_made_run()[:1], run_id="old", now_ms=T0)
    await write_run(path, [], run_id="new", now_ms=T0 + H)
    assert load_report(path).run_id == "new"
    await write_run(path, [], run_id="old", now_ms=T0 + 2 * H)   # a restart of the old run
    assert load_report(path).run_id == "old"
    assert load_report(path, "new").run_id == "new"
    with pytest.raises(DataError, match=r"no run 'other' \(runs here: old, new\)"):
        load_report(path, "other")


def test_a_missing_file_is_named_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(DataError, match="missing.sqlite"):
        load_report(path)
    assert not path.exists()


@pytest.mark.asyncio
async def test_a_log_without_runs_and_a_file_that_is_no_log(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    async with await TradeStore.open(empty):
        pass
    with pytest.raises(DataError, match="no runs"):
        load_report(empty)
    other = tmp_path / "other.txt"
    other.write_text("hello " * 1000)
    with pytest.raises(DataError, match="other.txt"):
        load_report(other)


@pytest.mark.asyncio
async def test_the_report_reads_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    async with await TradeStore.open(path) as store:
        await store.begin_run("r1", "paper", "{}", "cfg1", "test", T0)
        for r in hand_made_run()[:2]:
            await store.write_bar("r1", r)
        assert load_report(path).bars == 2


@pytest.mark.asyncio
async def test_main_prints_the_report_or_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.sqlite"
    await write_run(path, hand_made_run())
    assert main(["--db", str(path)]) == 0
    assert "Run 'r1'" in capsys.readouterr().out
    assert main(["--db", str(tmp_path / "nope.sqlite")]) == 1
    assert "nope.sqlite" in capsys.readouterr().err


def test_max_drawdown_edge_cases() -> None:
    assert max_drawdown([]) is None
    assert max_drawdown([(1, D(100)), (2, D(100)), (3, D(120))]) is None
    dd = max_drawdown([(1, D(100)), (2, D(50)), (3, D(200)), (4, D(120)), (5, D(150))])
    assert dd is not None and (dd.pct, dd.peak_ms, dd.trough_ms) == (D(50), 1, 2)


# --- property: per-symbol PnL sums to the equity change for any consistent run ---------------------------

SYMBOLS = (BTC, ETH, "XRP/USDT")


@dataclass(frozen=True)
class Step:
    """One bar: an optional order for the next bar's open, that open's prices and fee, and the close marks."""

    order: tuple[int, Side, D] | None
    fill_price: D
    fee: D
    marks: tuple[D, D, D]


prices = st.decimals(min_value=D("0.01"), max_value=D("50000"), places=2)
steps = st.builds(
    Step,
    order=st.none() | st.tuples(st.integers(0, 2), st.sampled_from(Side),
                                st.decimals(min_value=D("0.001"), max_value=D("100"), places=3)),
    fill_price=prices,
    fee=st.decimals(min_value=D(0), max_value=D("5"), places=8),
    marks=st.tuples(prices, prices, prices),
)


def simulate(initial: D, plan: list[Step]) -> tuple[list[BarRecord], dict[str, D], list[D]]:
    """Turn a plan into bar records with consistent books; return them, the PnL by symbol and the equity."""
    cash, qty = initial, dict.fromkeys(SYMBOLS, D(0))
    flows = dict.fromkeys(SYMBOLS, D(0))
    pending: SubmitOrder | None = None
    records, equity = [], []
    for i, step in enumerate(plan):
        bar_ms = T0 + i * H
        fills: tuple[OrderFilled, ...] = ()
        if pending is not None:
            sign = 1 if pending.side is Side.BUY else -1
            cash -= sign * pending.qty * step.fill_price + step.fee
            flows[pending.symbol] -= sign * pending.qty * step.fill_price + step.fee
            qty[pending.symbol] += sign * pending.qty
            fills = (OrderFilled(pending.order_id, pending.symbol, pending.bar_ms, bar_ms, pending.side,
                                 pending.qty, step.fill_price, step.fee),)
        marks = dict(zip(SYMBOLS, step.marks))
        value = cash + sum(qty[s] * marks[s] for s in SYMBOLS)
        pending = None if step.order is None else SubmitOrder(f"o{i}", SYMBOLS[step.order[0]], bar_ms,
                                                                step.order[1], step.order[2])
        positions = tuple(PositionMarked(s, qty[s], D(0), marks[s]) for s in SYMBOLS if qty[s] or s == BTC)
        records.append(record(bar_ms, cash, value, positions, fills=fills,
                              orders=() if pending is None else (pending,)))
        equity.append(value)
    last_marks = dict(zip(SYMBOLS, plan[-1].marks))
    pnl = {s: flows[s] + qty[s] * last_marks[s] for s in SYMBOLS}
    return records, pnl, equity


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.decimals(min_value=D(1), max_value=D(10) ** 7, places=2),
       plan=st.lists(steps, min_size=1, max_size=10))
def test_symbol_pnl_sums_to_the_equity_change(initial: D, plan: list[Step]) -> None:
    records, pnl, equity = simulate(initial, plan)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.sqlite"
        asyncio.run(write_run(path, records))
        report = load_report(path)
    # The books balance whatever the prices; random prices need not be plausible ones (checked apart below).
    books = [c for c in report.checks if not c.name.startswith("equity path")]
    assert all(c.ok for c in books), [c.detail for c in books if not c.ok]
    assert report.pnl == equity[-1] - equity[0]
    # The identity holds symbol by symbol against the simulation, not only in total.
    got = {s.symbol: s.pnl for s in report.symbols}
    assert got == {s: pnl[s] for s in got}
    assert set(got) >= {f.symbol for r in records for f in r.fills}
    assert report.trades == sum(len(r.fills) for r in records)
    # The drawdown agrees with the definition: the worst fall below the running peak, bar by bar.
    falls = [(peak - e) / peak * 100 for j, e in enumerate(equity)
             if (peak := max(equity[: j + 1])) > 0 and e < peak]
    if report.max_drawdown is None:
        assert not falls
    else:
        assert report.max_drawdown.pct.quantize(D("1e-12")) == max(falls).quantize(D("1e-12"))


@pytest.mark.asyncio
async def test_the_review_of_runs_without_candles_or_bars_still_writes_its_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.sqlite"
    await write_run(path, hand_made_run())
    await write_run(path, [], run_id="empty", now_ms=T0 + H)
    out = {k: tmp_path / f"r.{k}" for k in ("html", "png", "csv")}
    assert main(["--db", str(path), "--run", "r1", "--html", str(out["html"]), "--png", str(out["png"]),
                 "--csv", str(out["csv"])]) == 0
    text = capsys.readouterr().out
    # No candles were logged: no forecast can be scored, and no buy-and-hold can be drawn.
    assert "no forecast has an outcome yet" in text and "buy & hold (no candles)" in text
    all_trips = next(line for line in text.splitlines() if line.startswith("  all "))
    assert all_trips.split() == ["all", "1", "0.0%", "0.00", "-10.39", "-10.39"]   # the closed BTC trip
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["html"].read_text().count("data-figure=") == 16   # no candles: no symbol chart
    assert (tmp_path / "r-round-trips.csv").read_text().count("\n") == 3     # header, BTC closed, ETH open
    assert main(["--db", str(path), "--run", "empty", "--html", str(out["html"])]) == 0
    assert "HTML report" in capsys.readouterr().out
    assert out["html"].read_text().count("No bars written yet") == 2      # the overview and the tearsheet


@pytest.mark.asyncio
async def test_books_that_balance_on_an_absurd_price_are_flagged_as_implausible(tmp_path: Path) -> None:
    """The issue's run: BTC marked at 99999999999999 for one bar balances to the last unit, but is no market."""
    path = tmp_path / "t.sqlite"
    records = hand_made_run()
    absurd = D("99999999999999")
    bar2 = records[2]
    cash = bar2.equity.cash
    positions = (PositionMarked(BTC, D(2), D(100), absurd), PositionMarked(ETH, D(10), D(20), D(21)))
    records[2] = record(bar2.bar_ms, cash, cash + 2 * absurd + 210, positions, orders=bar2.orders,
                        actions={BTC: "sell"}, fills=bar2.fills)
    await write_run(path, records)
    report = load_report(path)
    assert [c.ok for c in report.checks] == [True, True, True, False] and not report.reconciles
    text = format_report(report)
    assert "FAIL  equity path is physically plausible" in text
    assert "BTC/USDT marked 105 then 1e+14 at 2024-01-01 02:00 UTC" in text
    assert "equity 10009.8 -> 2.00000e+14 at 2024-01-01 02:00 UTC" in text
