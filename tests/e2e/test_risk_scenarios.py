"""Crash scenarios through the real engine, asserted from the trade log alone.

A deliberately long-biased predictor (constant μ > 0, small σ) trades real Binance
klines around the crashes of 12 March 2020 and 19 May 2021, replayed over a
websocket on loopback.  With high leverage the margin check must liquidate at the
bar's adverse extreme; with a tight VaR budget the manager must cut the largest
contributors first, each step logged with the VaR before and after.  The same
paths also run on a generated crash, so they are covered without the shared data.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.config import Settings
from bot.execution.paper import PaperExecutor
from bot.feeds.replay.csvdata import Series, load_ohlcv_csv
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.websocket import KlineFeed
from bot.runs.daemon import build_account, build_risk
from bot.runs.engine import Engine
from bot.store.trade_store import TradeStore
from strategies.events import Forecast

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
H = 3_600_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW = 48
MARCH_2020 = 1_583_366_400_000  # 2020-03-05 00:00 UTC (after the 4 March gap); the crash is on the 12th
MAY_2021 = 1_620_604_800_000    # 2021-05-10 00:00 UTC; the crash is on the 19th
CRASH_DAY = {MARCH_2020: 1_583_971_200_000, MAY_2021: 1_621_382_400_000}  # 00:00 UTC of the crash day


class ConstantPredictor:
    """Always the same forecast: a stand-in for an over-confident long-only model."""

    name = "constant_long"
    min_window = 2

    def __init__(self, mu: float, sigma: float) -> None:
        self.mu, self.sigma = mu, sigma

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        return [Forecast(s, bar_ms, self.mu, self.sigma, self.name) for s in symbols]


def real(start_ms: int, bars: int) -> dict[str, Series]:
    if not SHARED.is_dir():
        pytest.skip("../shared/data not present: the real Binance klines live only in the team workspace")
    out = {}
    for s in SYMBOLS:
        series = load_ohlcv_csv(SHARED / f"{s.replace('/', '')}-1h.csv.gz")
        i = int(np.searchsorted(series.open_ms, start_ms))
        out[s] = series.slice(i, i + bars)
        assert np.all(np.diff(out[s].open_ms) == H), f"{s}: the slice must have no gap"
    return out


def generated_crash(bars: int, crash_at: int) -> dict[str, Series]:
    """A synthetic calm market with a 35 % crash over 8 hours at ``crash_at``."""
    calm = generate_market(SYMBOLS, bars, 1_704_067_200_000, seed=21)
    out = {}
    for s, series in calm.items():
        rows = list(series.rows())
        factor = 1.0
        new = []
        prev_close = None
        for i, (t, o, h, lo, c, v) in enumerate(rows):
            if crash_at <= i < crash_at + 8:
                factor *= math.exp(-0.055)
            scale = lambda x: float(x) * factor  # noqa: E731
            op, hi, low, cl = (scale(x) for x in (o, h, lo, c))
            if prev_close is not None:
                op = prev_close
            hi, low = max(hi, op, cl), min(low, op, cl) * (0.97 if crash_at <= i < crash_at + 8 else 1)
            new.append((t, f"{op:.6f}", f"{hi:.6f}", f"{low:.6f}", f"{cl:.6f}", v))
            prev_close = float(f"{cl:.6f}")
        out[s] = Series.from_rows(new)
    return out


def scenario_settings(db: Path, paper: dict[str, Any] | None = None, **risk: dict[str, Any]) -> Settings:
    base = {"gate": {"sigma_max": 0.5, "rule": "strength"},   # a constant mu: the cost-blind rule trades it
            "state": {"reduce_drawdown": 0.98, "halt_drawdown": 0.99, "coverage_min_bars": 100_000}}
    for k, v in risk.items():
        base.setdefault(k, {}).update(v)
    return Settings().with_overrides(run={"db": str(db), "id": "crash"},
                                     market={"symbols": SYMBOLS, "window": WINDOW},
                                     feed={"backfill": False}, risk=base, paper=paper or {})


async def run_engine(data: dict[str, Series], settings: Settings, bars: int) -> None:
    """Stream every bar (the first WINDOW fill the windows) through the real engine."""
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=0) as exchange:
        feed = KlineFeed(exchange.ws_url, SYMBOLS, "1h", H)
        async with await TradeStore.open(settings.run.db) as store:
            await store.begin_run("crash", "paper", settings.to_json(), settings.config_hash, "test", 0)
            engine = Engine(settings, "crash", store, PaperExecutor(build_account(settings, None)),
                            ConstantPredictor(0.002, 0.004), build_risk(settings, None))  # type: ignore[arg-type]
            task = asyncio.create_task(feed.run())
            try:
                await asyncio.wait_for(engine.run(feed.queue, asyncio.Event(), max_bars=bars), 120)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


LEVERED = {"sizing": {"kelly_fraction": 1.0, "target_vol_annual": 10.0, "max_position_fraction": 3.0,
                      "max_gross_leverage": 9.0, "max_leverage": 20.0},
           "var": {"budget_1": 1.0, "budget_24": 1.0}}


def check_liquidations(db: Path) -> int:
    """Every position whose bar range crossed its liquidation price was liquidated there, and no other;
    every liquidation closed the whole position inside the bar's adverse range.  Returns how many."""
    candle = {(r["symbol"], r["bar_ms"]): r for r in rows(db, "SELECT * FROM candles")}
    pos = {(r["symbol"], r["bar_ms"]): r for r in rows(db, "SELECT * FROM positions")}
    fills = defaultdict(list)
    for f in rows(db, "SELECT * FROM fills"):
        fills[(f["symbol"], f["bar_ms"])].append(f)
    for (s, b), p in pos.items():
        nxt = candle.get((s, b + H))
        if nxt is None or p["liq_price"] is None:
            continue
        if any(f["reason"] == "signal" for f in fills[(s, b + H)]):
            continue  # the position changed at the next open: its liquidation price moved with it
        q, liq = Decimal(p["qty"]), Decimal(p["liq_price"])
        low, high, open_ = Decimal(nxt["low"]), Decimal(nxt["high"]), Decimal(nxt["open"])
        breached = low <= liq if q > 0 else high >= liq
        liqs = [f for f in fills[(s, b + H)] if f["reason"] == "liquidation"]
        assert bool(liqs) == breached, f"{s} at {b + H}: breached={breached} but {len(liqs)} liquidation(s)"
        if liqs:
            expected = min(liq, open_) if q > 0 else max(liq, open_)   # a gap through fills at the open
            assert Decimal(liqs[0]["price"]) == expected and Decimal(liqs[0]["qty"]) == abs(q)
    liquidations = rows(db, "SELECT * FROM fills WHERE reason = 'liquidation'")
    for f in liquidations:
        s, b = f["symbol"], f["bar_ms"]
        c = candle[(s, b)]
        price = Decimal(f["price"])
        if f["side"] == "sell":   # a long: between the low and the open
            assert Decimal(c["low"]) <= price <= Decimal(c["open"])
        else:
            assert Decimal(c["open"]) <= price <= Decimal(c["high"])
        assert (s, b) not in pos, "a liquidated position is still held at the close"
        (o,) = rows(db, f"SELECT type, status FROM orders WHERE order_id = '{f['order_id']}'")
        assert tuple(o) == ("liquidation", "filled")
    return len(liquidations)


def check_equity_identity(db: Path) -> None:
    """equity = cash + Σ qty × mark at every bar, liquidations included (exact: liquidation prices are
    28-digit quotients, so the sums need more than Decimal's default 28 digits)."""
    with localcontext(prec=100):
        marked: dict[int, Decimal] = defaultdict(Decimal)
        for p in rows(db, "SELECT bar_ms, qty, mark FROM positions"):
            marked[p["bar_ms"]] += Decimal(p["qty"]) * Decimal(p["mark"])
        for e in rows(db, "SELECT bar_ms, cash, equity FROM equity"):
            assert Decimal(e["equity"]) == Decimal(e["cash"]) + marked[e["bar_ms"]]


def check_deleveraging(db: Path, budget_1: float, budget_24: float) -> int:
    steps = rows(db, "SELECT * FROM deleverage_steps ORDER BY bar_ms, step")
    for s in steps:
        assert s["var_after"] <= s["var_before"]
        assert abs(s["exposure_after"]) <= abs(s["exposure_before"])
        assert s["exposure_after"] == 0 or (s["exposure_after"] > 0) == (s["exposure_before"] > 0)
    equity = {r["bar_ms"]: float(r["equity"]) for r in rows(db, "SELECT bar_ms, equity FROM equity")}
    # After the cuts every bar's book is within both budgets, whichever method binds.
    for v in rows(db, "SELECT bar_ms, horizon, MAX(var) AS var FROM var_estimates GROUP BY bar_ms, horizon"):
        budget = budget_1 if v["horizon"] == 1 else budget_24
        assert v["var"] <= budget * equity[v["bar_ms"]] * (1 + 1e-9)
    for s in steps:
        (d,) = rows(db, f"SELECT reason FROM decisions WHERE bar_ms = {s['bar_ms']} AND symbol = '{s['symbol']}'")
        assert "VaR budget" in d["reason"]
    return len(steps)


@pytest.mark.asyncio
@pytest.mark.parametrize("start", [MARCH_2020, MAY_2021], ids=["march-2020", "may-2021"])
async def test_levered_longs_are_liquidated_in_real_crashes(start: int, tmp_path: Path) -> None:
    bars = 300
    db = tmp_path / "crash.sqlite"
    await run_engine(real(start, bars), scenario_settings(db, **LEVERED), bars)
    assert check_liquidations(db) >= 1, "a 9x long book through the crash must be liquidated"
    check_equity_identity(db)
    # The crash day itself liquidates the (re-entered) longs.
    day = CRASH_DAY[start]
    on_the_day = rows(db, f"SELECT COUNT(*) AS n FROM fills WHERE reason = 'liquidation' "
                          f"AND bar_ms >= {day} AND bar_ms < {day + 24 * H}")[0]["n"]
    assert on_the_day >= 1


@pytest.mark.asyncio
@pytest.mark.parametrize("start", [MARCH_2020, MAY_2021], ids=["march-2020", "may-2021"])
async def test_a_var_budget_deleverages_largest_contributor_first_in_real_crashes(start: int,
                                                                                   tmp_path: Path) -> None:
    bars = 300
    db = tmp_path / "var.sqlite"
    var = {"budget_1": 0.02, "budget_24": 0.08}
    settings = scenario_settings(db, sizing=LEVERED["sizing"], var=var)
    await run_engine(real(start, bars), settings, bars)
    assert check_deleveraging(db, **var) >= 1
    assert check_liquidations(db) == 0, "within the VaR budget the book should never reach its margin"
    check_equity_identity(db)


@pytest.mark.asyncio
async def test_generated_crash_liquidates_and_deleverages(tmp_path: Path) -> None:
    bars = 160
    data = generated_crash(bars + 1, crash_at=120)
    db = tmp_path / "gen.sqlite"
    await run_engine(data, scenario_settings(db, paper={"funding_rate_8h": "0.0001"}, **LEVERED), bars)
    assert check_liquidations(db) >= 1
    check_equity_identity(db)
    # Longs pay positive funding, at 00, 08 and 16 UTC only, amount = -qty * mark * rate exactly.
    funding = rows(db, "SELECT * FROM funding")
    assert funding
    for f in funding:
        assert f["bar_ms"] % (8 * H) == 0
        assert Decimal(f["amount"]) == -Decimal(f["qty"]) * Decimal(f["mark"]) * Decimal("0.0001")
        assert Decimal(f["mark"]) == Decimal(rows(db, f"SELECT open FROM candles WHERE symbol = '{f['symbol']}' "
                                                      f"AND bar_ms = {f['bar_ms']}")[0]["open"])
    db2 = tmp_path / "gen-var.sqlite"
    var = {"budget_1": 0.01, "budget_24": 0.04}
    await run_engine(data, scenario_settings(db2, sizing=LEVERED["sizing"], var=var), bars)
    assert check_deleveraging(db2, **var) >= 1
    check_equity_identity(db2)
    # The report reconciles liquidations to the last unit.
    from bot.reporting.run_report import load_report
    assert load_report(db).reconciles
    assert load_report(db).liquidations >= 1

