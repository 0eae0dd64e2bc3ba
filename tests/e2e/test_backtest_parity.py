"""Parity: `bot backtest` and the daemon against the replay exchange log the same bars identically.

(a) the real daemon over a websocket and ccxt's REST backfill from the replay exchange on loopback, and
(b) the backtest from CSV files of the same data in process, both write a trade log; every table about
what was traded — candles, forecasts, decisions, orders, fills, equity, positions, risk states, VaR,
deleveraging steps, funding — must hold the same rows (run ids aside; sessions, outages and rejections
carry wall-clock times and are not compared).  Both with the baseline predictor (whose forecasts the
backtest precomputes in one vectorised pass) and with a tiny trained cnn_gru checkpoint.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.config import Settings
from bot.feeds.replay.csvdata import Series, load_ohlcv_csv, write_ohlcv_csv
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import HistoricalBars, PrecomputedBaseline, run_backtest
from bot.runs.daemon import run_daemon
from strategies.baseline import EwmaMomentumPredictor

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
START_MS = 1_704_067_200_000
TABLES = ("candles", "forecasts", "decisions", "orders", "fills", "equity", "positions", "risk_state",
          "var_estimates", "deleverage_steps", "funding")
# Low thresholds and a tight VaR budget so that the runs trade, deleverage and pay funding: the
# comparison must cover fills, not only "none" decisions.
RISK = {"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01},
        "var": {"budget_1": 0.01}}
PAPER = {"funding_rate_8h": "0.0001"}


def table_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "run_id"]
        return sorted(conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)


def write_csvs(data: dict[str, Series], folder: Path) -> Path:
    folder.mkdir()
    for sym, series in data.items():
        write_ohlcv_csv(folder / f"{sym.replace('/', '')}-1h.csv.gz", series)
    return folder


async def daemon_run(data: dict[str, Series], db: Path, history: int, bars: int, **overrides: object) -> None:
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=history) as ex:
        settings = Settings().with_overrides(
            run={"db": str(db), "id": "parity"},
            feed={"ws_url": ex.ws_url, "rest_url": ex.rest_url, "assembly_timeout_s": 5.0}, **overrides)
        result = await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=bars), timeout=240)
    assert result.stats.bars == bars and result.stats.gaps == 0 and result.stats.incomplete_bars == 0


def assert_same_logs(daemon_db: Path, backtest_db: Path, bars: int) -> None:
    counts = {}
    for table in TABLES:
        a, b = table_rows(daemon_db, table), table_rows(backtest_db, table)
        assert a == b, f"{table}: the daemon and the backtest differ"
        counts[table] = len(a)
    assert counts["equity"] == bars
    assert counts["fills"] >= 5 and counts["forecasts"] == bars * len(SYMBOLS), counts


def test_backtest_matches_the_daemon_on_the_replay_exchange(tmp_path: Path) -> None:
    window, bars = 48, 200
    data = generate_market(SYMBOLS, window + bars, START_MS, seed=11)
    overrides = {"market": {"symbols": SYMBOLS, "window": window}, "risk": RISK, "paper": PAPER,
                 "forecast": {"skill": {"enabled": False}}}
    asyncio.run(daemon_run(data, tmp_path / "daemon.sqlite", window, bars, **overrides))

    # The CLI, from CSV files: the same strings, parsed as the exchange's JSON was.
    csv = write_csvs(data, tmp_path / "csv")
    config = tmp_path / "config.toml"
    config.write_text(
        "[market]\nsymbols = [\"BTC/USDT\", \"ETH/USDT\", \"XRP/USDT\"]\nwindow = 48\n"
        "[forecast.skill]\nenabled = false\n[risk.gate]\nrule = 'strength'\nlong_entry_strength = 0.05\nshort_entry_strength = 0.05\nexit_strength = 0.01\n"
        "[risk.var]\nbudget_1 = 0.01\n[paper]\nfunding_rate_8h = \"0.0001\"\n")
    db = tmp_path / "backtest.sqlite"
    assert main(["backtest", "--config", str(config), "--data", str(csv), "--db", str(db), "--run-id", "parity",
                 "--commit-every", "64"]) == 0
    assert_same_logs(tmp_path / "daemon.sqlite", db, bars)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deleverage_steps").fetchone()[0] > 0
        assert conn.execute("SELECT COUNT(*) FROM funding").fetchone()[0] > 0
    # `bot report` reads the backtest's log as it is.
    assert main(["report", "--db", str(db), "--run", "parity"]) == 0


def test_backtest_matches_the_daemon_with_a_trained_cnn_gru(tmp_path: Path) -> None:
    from bot.runs.walkforward import WalkForward, WalkForwardPlan

    window, history, bars = 64, 500, 30
    # A two-step model's |mu|/sigma is small: any signal trades and every drift is rebalanced, so that
    # fills are compared too.
    risk = {"gate": {"rule": "strength", "long_entry_strength": 0.0, "short_entry_strength": 0.0, "exit_strength": 0.0,
                     "sigma_max": 1.0}, "sizing": {"rebalance_tolerance": 0.0}}
    data = generate_market(SYMBOLS, history + bars, START_MS, seed=5)
    model = {"name": "cnn_gru", "device": "cpu",
             "cnn_gru": {"lookback": 24, "conv_channels": 4, "gru_hidden": 8, "gru_layers": 2},
             "train": {"epochs": 1, "max_steps_per_epoch": 3, "batch_size": 32}}
    base = Settings().with_overrides(market={"symbols": SYMBOLS, "window": window}, model=model)
    # Train on the history before the first decided bar, then serve the checkpoint file to both runs.
    from strategies.checkpoint import save_checkpoint
    from strategies.workflow import data_range

    walk = WalkForward(base, WalkForwardPlan("cnn_gru", 10_000, "expanding", None), data)
    end = int(data["BTC/USDT"].open_ms[history])
    walk.fit(end)
    fitted = walk.predictor.current.ckpt
    ckpt = tmp_path / "cnn_gru.pt"
    save_checkpoint(ckpt, fitted.forecaster, scaler=fitted.scaler, symbols=tuple(SYMBOLS), timeframe="1h",
                    data_range=data_range(walk.store.series, walk.store.first_ms(), end), summary={},
                    settings_json="{}")
    overrides = {"market": {"symbols": SYMBOLS, "window": window}, "risk": risk,
                 "model": {**model, "checkpoint": str(ckpt)}, "forecast": {"skill": {"enabled": False}}}
    asyncio.run(daemon_run(data, tmp_path / "daemon.sqlite", history, bars, **overrides))
    settings = Settings().with_overrides(run={"db": str(tmp_path / "bt.sqlite"), "id": "parity"}, **overrides)
    # The backtest reads the CSV round trip too: exact strings in, the exchange's strings out.
    csv = write_csvs(data, tmp_path / "csv")
    loaded = {s: load_ohlcv_csv(csv / f"{s.replace('/', '')}-1h.csv.gz") for s in SYMBOLS}
    result = asyncio.run(run_backtest(settings, loaded, start_ms=end, commit_every=7))
    assert result.bars == bars
    assert_same_logs(tmp_path / "daemon.sqlite", tmp_path / "bt.sqlite", bars)


@pytest.mark.parametrize("window", [26, 128])
def test_precomputed_baseline_is_bit_identical_to_per_bar_predict(window: int) -> None:
    """Batch inference over time: every bar's forecast equals predict() on that bar's batch, to the bit,
    whatever the other symbols in the batch."""
    data = generate_market([f"S{i:02d}/USDT" for i in range(12)], 900, START_MS, seed=2)
    bars = HistoricalBars(data, list(data), 3_600_000)
    base = EwmaMomentumPredictor()
    pre = PrecomputedBaseline(base, bars, window)
    floats = {s: np.stack([np.asarray(c, dtype=np.float64) for c in (d.open, d.high, d.low, d.close, d.volume)],
                          axis=1) for s, d in data.items()}
    syms = list(data)
    rng = np.random.default_rng(0)
    for i in range(window - 1, 900):
        batch = [s for s in syms if rng.random() < 0.6] or syms[:1]
        windows = np.stack([floats[s][i + 1 - window:i + 1] for s in batch])
        t = int(bars.times[i])
        assert pre.predict(t, batch, windows) == base.predict(t, batch, windows)


def test_precomputed_baseline_refuses_a_window_that_is_not_the_data() -> None:
    data = generate_market(["BTC/USDT"], 100, START_MS, seed=2)
    bars = HistoricalBars(data, ["BTC/USDT"], 3_600_000)
    pre = PrecomputedBaseline(EwmaMomentumPredictor(), bars, 30)
    window = np.stack([np.asarray(c, dtype=np.float64) for c in
                       (data["BTC/USDT"].open, data["BTC/USDT"].high, data["BTC/USDT"].low,
                        data["BTC/USDT"].close, data["BTC/USDT"].volume)], axis=1)[50:80].copy()
    with pytest.raises(RuntimeError, match="not the data"):
        pre.predict(int(bars.times[80]), ["BTC/USDT"], window[None])   # the window of bar 79, not 80
