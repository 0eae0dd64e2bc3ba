"""Backtests of whole years through the engine: the default decisions do nothing, cheaply, on a market without
an edge, and make money on one with an edge, after fees, where the cost-blind decisions lost it.

The cost-blind decisions (``COST_BLIND``) are those of versions before 0.2, measured beside the default."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.feeds.replay.csvdata import Series, load_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import run_backtest
from strategies.base import CLOSE
from strategies.events import Forecast

H = 3_600_000
START_MS = 1_704_067_200_000      # 2024-01-01
YEAR = 24 * 365
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
# The decisions of versions before 0.2: |mu|/sigma thresholds, mu at face value, the model's own sigma.
COST_BLIND = {"risk": {"gate": {"rule": "strength"}},
              "forecast": {"skill": {"enabled": False}, "calibration": {"enabled": False},
                           "monitor": {"enabled": False}}}


def settings(db: Path, symbols: Sequence[str], **overrides: dict[str, object]) -> Settings:
    base = {"market": {"symbols": list(symbols), "window": 64}}
    merged = {**base, **overrides}
    if "market" in overrides:
        merged["market"] = {**base["market"], **overrides["market"]}
    return Settings().with_overrides(run={"db": str(db), "id": "bt"}, **merged)


def summary(db: Path) -> dict[str, float]:
    with sqlite3.connect(db) as conn:
        equity = [Decimal(e) for (e,) in conn.execute("SELECT equity FROM equity ORDER BY bar_ms")]
        fees = sum((Decimal(f) for (f,) in conn.execute("SELECT fee FROM fills")), Decimal(0))
        fill_bars = conn.execute("SELECT COUNT(DISTINCT bar_ms) FROM fills").fetchone()[0]
    start = Decimal(10_000)
    return {"return": float(equity[-1] / start - 1), "fees": float(fees / start),
            "traded_bars": fill_bars / len(equity), "bars": len(equity)}


def lead_lag_market(n: int, seed: int, coef: float = 0.3) -> dict[str, Series]:
    """B's next return = ``coef`` × A's last return + noise; A a fat-tailed random walk (0.6 %/h)."""
    rng = np.random.default_rng(seed)
    ra = rng.standard_t(4, n) * 0.006 / math.sqrt(2.0)
    rb = coef * np.concatenate(([0.0], ra[:-1])) + rng.standard_t(4, n) * 0.006 / math.sqrt(2.0)
    out = {}
    for sym, r, p0 in (("BTC/USDT", ra, 40_000.0), ("ETH/USDT", rb, 2_000.0)):
        close = p0 * np.exp(np.cumsum(r))
        open_ = np.concatenate(([p0], close[:-1]))
        high = np.maximum(open_, close) * 1.001
        low = np.minimum(open_, close) * 0.999
        fmt = lambda a: tuple(f"{v:.2f}" for v in a)  # noqa: E731 - a local formatter
        out[sym] = Series(START_MS + H * np.arange(n, dtype=np.int64), fmt(open_), fmt(high), fmt(low), fmt(close),
                          tuple("100.0" for _ in range(n)))
    return out


class LeadLagModel:
    """A model that has learned the planted relation, imperfectly, as a trained network does: mu_B = 0.3 × A's
    last return plus estimation noise as large as the signal, mu_A = that noise alone; sigma from 24 bars."""

    name = "lead_lag"
    min_window = 30

    def __init__(self, noise: float = 0.0018) -> None:
        self.noise = noise
        self.rng = np.random.default_rng(9)

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        r = np.diff(np.log(windows[:, :, CLOSE]), axis=1)
        sigma = np.sqrt(np.mean(r[:, -24:] ** 2, axis=1))
        a = list(symbols).index("BTC/USDT") if "BTC/USDT" in symbols else None
        out = []
        for i, s in enumerate(symbols):
            mu = 0.3 * float(r[a, -1]) if s == "ETH/USDT" and a is not None else 0.0
            mu += float(self.rng.normal(0.0, self.noise))
            out.append(Forecast(s, bar_ms, mu, float(sigma[i]), self.name))
        return out


@pytest.mark.slow
def test_a_market_without_an_edge_is_left_alone_by_the_default_config(tmp_path: Path) -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], YEAR + 64, START_MS, seed=11)
    db = tmp_path / "noedge.sqlite"
    asyncio.run(run_backtest(settings(db, list(data)), data))
    s = summary(db)
    assert s["bars"] == YEAR
    assert s["traded_bars"] < 0.01 and s["return"] >= -0.01
    # The cost-blind decisions on the same market trade on many bars and lose (what issue 8 measured).
    blind = tmp_path / "blind.sqlite"
    asyncio.run(run_backtest(settings(blind, list(data), **COST_BLIND), data))
    b = summary(blind)
    assert b["traded_bars"] > 0.03 and b["return"] < s["return"]


@pytest.mark.slow
def test_a_real_edge_is_traded_at_a_profit_after_fees_and_beats_the_cost_blind_decisions(tmp_path: Path) -> None:
    data = lead_lag_market(4000, seed=3)
    db = tmp_path / "edge.sqlite"
    asyncio.run(run_backtest(settings(db, list(data)), data, predictor=LeadLagModel()))
    s = summary(db)
    blind = tmp_path / "blind.sqlite"
    asyncio.run(run_backtest(settings(blind, list(data), **COST_BLIND), data, predictor=LeadLagModel()))
    b = summary(blind)
    assert s["return"] > 0.01 and s["return"] > b["return"] and b["return"] < -0.5, (s, b)
    assert s["fees"] < b["fees"] / 2, (s, b)
    # Skill had to be demonstrated first: nothing was traded before min_bars outcomes were in.
    with sqlite3.connect(db) as conn:
        first_fill = conn.execute("SELECT MIN(decision_bar_ms) FROM fills").fetchone()[0]
        first_bar = conn.execute("SELECT MIN(bar_ms) FROM equity").fetchone()[0]
        skilled = dict(conn.execute("SELECT symbol, AVG(skill > 0) FROM forecasts GROUP BY symbol").fetchall())
        fills = dict(conn.execute("SELECT symbol, COUNT(*) FROM fills GROUP BY symbol").fetchall())
    assert (first_fill - first_bar) // H >= 168
    # The lagging symbol's mu earned a skill scale most of the time; the leader's mu is noise and rarely looked
    # like skill (a lower confidence bound is crossed by chance now and then).
    assert skilled["ETH/USDT"] > 0.5 and skilled["BTC/USDT"] < 0.1, skilled
    assert fills["ETH/USDT"] > 5 * fills.get("BTC/USDT", 0), fills


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real market data not found at {SHARED}")
def test_real_2025_hourly_data_costs_the_default_config_little(tmp_path: Path) -> None:
    data = {f"{b}/USDT": load_ohlcv_csv(SHARED / f"{b}USDT-1h.csv.gz", H) for b in ("BTC", "ETH", "XRP")}
    db = tmp_path / "real.sqlite"
    start, end = 1_735_689_600_000, 1_767_225_600_000      # 2025-01-01 .. 2026-01-01
    asyncio.run(run_backtest(settings(db, list(data), market={"window": 128}), data, start, end))
    s = summary(db)
    assert s["return"] >= -0.02 and s["fees"] < 0.02, s


@pytest.mark.slow
def test_skill_calibration_and_monitor_resume_exactly_after_an_interruption(tmp_path: Path) -> None:
    """The scoring stage's state is in the trade log: a run stopped halfway and resumed logs the same forecasts
    (raw and effective mu, skill, intervals, alarms, state), decisions and fills as one that never stopped."""
    data = lead_lag_market(1200, seed=5)
    whole_db = tmp_path / "whole.sqlite"
    asyncio.run(run_backtest(settings(whole_db, list(data)), data, commit_every=37, predictor=LeadLagModel()))
    stop = asyncio.Event()

    def progress(done: int, total: int, events: int) -> None:
        if done >= 640:
            stop.set()

    parts_db = tmp_path / "parts.sqlite"
    first = asyncio.run(run_backtest(settings(parts_db, list(data)), data, commit_every=37, progress=progress,
                                     stop=stop, predictor=LeadLagModel()))
    assert first.stopped and first.bars == 640
    # The model's own noise continues where it stopped, as a checkpoint's forecasts would.
    model = LeadLagModel()
    model.rng.normal(0.0, model.noise, 640 * 2)
    asyncio.run(run_backtest(settings(parts_db, list(data)), data, commit_every=37, predictor=model))
    with sqlite3.connect(whole_db) as a, sqlite3.connect(parts_db) as b:
        for table in ("forecasts", "decisions", "fills", "equity", "risk_state"):
            sql = f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"
            assert a.execute(sql).fetchall() == b.execute(sql).fetchall(), table
        skilled = a.execute("SELECT COUNT(*) FROM forecasts WHERE skill > 0 AND bar_ms > "
                            "(SELECT MIN(bar_ms) + 640 * 3600000 FROM equity)").fetchone()[0]
    assert skilled > 0       # the resumed half traded on skill carried over the interruption
