"""The backtest's own behaviour: walk-forward never sees the future, an interrupted run resumes to the same log,
and the in-process source builds the candles the feed would."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import Settings
from bot.feeds.replay.csvdata import Series
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import HistoricalBars, run_backtest
from bot.runs.walkforward import WalkForward, WalkForwardPlan

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START_MS = 1_704_067_200_000
H = 3_600_000
RISK = {"gate": {"rule": "strength", "long_entry_strength": 0.0, "short_entry_strength": 0.0, "exit_strength": 0.0, "sigma_max": 1.0}}
TINY = {"name": "cnn_gru", "device": "cpu",
        "cnn_gru": {"lookback": 24, "conv_channels": 4, "gru_hidden": 8, "gru_layers": 2},
        "train": {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 32}}


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def settings(db: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {"market": {"symbols": SYMBOLS, "window": 64}, "risk": RISK,
                               "forecast": {"skill": {"enabled": False}}}
    return Settings().with_overrides(run={"db": str(db), "id": "bt"}, **{**base, **overrides})


def walk_forward(db: Path, data: dict[str, Series], start_ms: int, window: str = "expanding",
                 train_bars: int | None = None) -> WalkForward:
    s = settings(db, model=TINY)
    walk = WalkForward(s, WalkForwardPlan("cnn_gru", 12, window, train_bars), data)
    asyncio.run(run_backtest(s, data, start_ms, predictor=walk.predictor, before_bar=walk.before_bar,
                             commit_every=10, models=walk))
    return walk


@pytest.mark.parametrize("window,train_bars", [("expanding", None), ("rolling", 300)])
def test_walk_forward_refits_on_the_past_only(tmp_path: Path, window: str, train_bars: int | None) -> None:
    data = generate_market(SYMBOLS, 430, START_MS, seed=4)
    start = START_MS + 400 * H
    walk = walk_forward(tmp_path / "wf.sqlite", data, start, window, train_bars)
    decided = [b for (b,) in rows(tmp_path / "wf.sqlite", "SELECT bar_ms FROM equity ORDER BY bar_ms")]
    assert decided == [start + i * H for i in range(30)]
    # A refit before the first bar and every 12 bars after it, each on bars strictly before its bar.
    assert [r.at_bar_ms for r in walk.retrains] == [start, start + 12 * H, start + 24 * H]
    for r in walk.retrains:
        assert r.end_ms == r.at_bar_ms and r.val_range[1] < r.at_bar_ms and r.train_range[1] < r.val_range[0]
        first = START_MS if window == "expanding" else r.at_bar_ms - 300 * H
        assert r.start_ms == first == r.train_range[0]
        assert r.best_val_nll is not None
    # Each bar was forecast by the model of the latest refit at or before it (the predictor refuses
    # otherwise), and all forecasts come from the learned model.
    assert {m for (m,) in rows(tmp_path / "wf.sqlite", "SELECT DISTINCT model FROM forecasts")} == {"cnn_gru"}
    # Each refit is a version in the models table, serving from its bar; the forecasts name it.
    versions = rows(tmp_path / "wf.sqlite", "SELECT version, status, trigger, train_from_ms, train_to_ms, first_bar_ms, "
                                            "last_bar_ms, device, train_seconds > 0 FROM models ORDER BY version")
    assert versions == [(k + 1, "retired" if k < 2 else "serving", "walk-forward", r.start_ms, r.end_ms, r.at_bar_ms,
                         min(r.at_bar_ms + 11 * H, start + 29 * H), "cpu", 1) for k, r in enumerate(walk.retrains)]
    per_bar = rows(tmp_path / "wf.sqlite", "SELECT bar_ms, MIN(model_version), MAX(model_version) FROM forecasts "
                                           "GROUP BY bar_ms")
    assert all(lo == hi == 1 + (b - start) // (12 * H) for b, lo, hi in per_bar)


def test_walk_forward_decisions_do_not_move_when_the_future_changes(tmp_path: Path) -> None:
    """Planted future: bars after t are replaced by a wildly different market; nothing decided at <= t moves."""
    data = generate_market(SYMBOLS, 430, START_MS, seed=4)
    other = generate_market(SYMBOLS, 430, START_MS, seed=99)
    cut = 415   # bars [0, cut] are shared; after it the two markets have nothing in common
    planted = {s: Series.from_rows(list(data[s].rows())[:cut + 1] +
                                   [(t, *r[1:]) for t, r in zip(data[s].open_ms[cut + 1:].tolist(),
                                                                list(other[s].rows())[cut + 1:])])
               for s in SYMBOLS}
    start = START_MS + 400 * H
    walk_forward(tmp_path / "a.sqlite", data, start)
    walk_forward(tmp_path / "b.sqlite", planted, start)
    t = START_MS + cut * H
    for table in ("forecasts", "decisions", "orders", "fills", "equity", "positions"):
        sql = f"SELECT * FROM {table} WHERE bar_ms <= {t} ORDER BY 1, 2, 3"
        a, b = rows(tmp_path / "a.sqlite", sql), rows(tmp_path / "b.sqlite", sql)
        assert a == b and a, table
    # ...and the planted future did change what came after (the test can fail).
    later = f"SELECT mu FROM forecasts WHERE bar_ms > {t:d} ORDER BY bar_ms, symbol"
    assert rows(tmp_path / "a.sqlite", later) != rows(tmp_path / "b.sqlite", later)


def test_an_interrupted_backtest_resumes_to_the_same_log(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS + ["XRP/USDT"], 400, START_MS, seed=8)
    syms = {"market": {"symbols": SYMBOLS + ["XRP/USDT"], "window": 64},
            "risk": {"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}}}
    whole = asyncio.run(run_backtest(settings(tmp_path / "whole.sqlite", **syms), data, commit_every=50))
    assert whole.bars == 400 - 64 and whole.stats.fills >= 5

    stop = asyncio.Event()

    def progress(done: int, total: int, events: int) -> None:
        if done >= 128:
            stop.set()   # as SIGINT does: the bar in progress finishes, decided bars are committed

    s = settings(tmp_path / "parts.sqlite", **syms)
    first = asyncio.run(run_backtest(s, data, commit_every=50, progress=progress, stop=stop))
    assert first.stopped and first.bars == 128
    second = asyncio.run(run_backtest(s, data, commit_every=50))
    assert second.resumed_from_bar_ms == first.last_bar_ms and second.bars == whole.bars - 128
    for table in ("forecasts", "decisions", "orders", "fills", "equity", "positions", "risk_state", "candles"):
        sql = f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"
        assert rows(tmp_path / "whole.sqlite", sql) == rows(tmp_path / "parts.sqlite", sql), table
    assert [r[0] for r in rows(tmp_path / "parts.sqlite", "SELECT end_reason FROM sessions ORDER BY session_no")] \
        == ["signal", "end_of_data"]


def test_candles_are_the_ones_the_feed_would_make() -> None:
    data = generate_market(SYMBOLS, 10, START_MS, seed=1)
    bars = HistoricalBars(data, SYMBOLS, H)
    bar = bars.bar(3)
    assert bar.complete and bar.bar_ms == START_MS + 3 * H and [c.symbol for c in bar.candles] == SYMBOLS
    c = bar.candles[1]
    s = data["ETH/USDT"]
    assert (c.open_ms, c.close_ms) == (START_MS + 3 * H, START_MS + 4 * H - 1)   # Binance's "T"
    assert (c.open, c.high, c.low, c.close, c.volume) == tuple(Decimal(x[3]) for x in
                                                               (s.open, s.high, s.low, s.close, s.volume))
    assert str(c.close) == s.close[3]


def test_a_symbol_missing_a_bar_is_decided_without_it(tmp_path: Path) -> None:
    data = generate_market(SYMBOLS, 120, START_MS, seed=1)
    keep = [i for i in range(120) if i != 90]
    eth = data["ETH/USDT"]
    data["ETH/USDT"] = Series.from_rows([eth.row(i) for i in keep])
    result = asyncio.run(run_backtest(settings(tmp_path / "gap.sqlite"), data))
    assert result.bars == 120 - 64 and result.stats.incomplete_bars == 1 and result.stats.gaps == 1
    reasons = rows(tmp_path / "gap.sqlite", f"SELECT reason FROM decisions WHERE symbol = 'ETH/USDT' "
                                            f"AND bar_ms = {START_MS + 90 * H}")
    assert "no closed bar" in reasons[0][0]


def test_cli_trades_the_config_symbols_among_the_files_given(tmp_path):
    """A data folder may hold more symbols than the config trades: only the config's are backtested."""
    import sqlite3

    from bot.cli import main
    from bot.feeds.replay.csvdata import write_ohlcv_csv
    from bot.feeds.replay.synthetic import generate_market

    market = generate_market(["BTC/USDT", "ETH/USDT", "SOL/USDT"], 120, 1_704_067_200_000, seed=2)
    for sym, series in market.items():
        write_ohlcv_csv(tmp_path / f"{sym.replace('/', '')}-1h.csv", series)
    config = tmp_path / "c.toml"
    config.write_text('[market]\nsymbols = ["BTC/USDT", "SOL/USDT"]\nwindow = 48\n')
    db = tmp_path / "bt.sqlite"
    assert main(["backtest", "--config", str(config), "--data", str(tmp_path), "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        traded = {s for (s,) in conn.execute("SELECT DISTINCT symbol FROM candles")}
    assert traded == {"BTC/USDT", "SOL/USDT"}
    assert main(["backtest", "--config", str(config), "--data", str(tmp_path), "--db", str(tmp_path / "x.sqlite"),
                 "--symbols", "DOGE/USDT"]) == 3


def test_cli_summary_matches_the_trade_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The printed summary against figures computed here straight from the trade log's rows."""
    import math
    import re
    from statistics import NormalDist

    import numpy as np

    from bot.cli import main
    from bot.feeds.replay.csvdata import write_ohlcv_csv

    symbols = SYMBOLS + ["XRP/USDT"]
    for sym, series in generate_market(symbols, 400, START_MS, seed=8).items():
        write_ohlcv_csv(tmp_path / f"{sym.replace('/', '')}-1h.csv", series)
    config = tmp_path / "c.toml"
    config.write_text('[market]\nsymbols = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]\nwindow = 64\n'
                      '[risk.gate]\nrule = "strength"\nlong_entry_strength = 0.05\nshort_entry_strength = 0.05\n'
                      "exit_strength = 0.01\n[forecast.skill]\nenabled = false\n"
                      "[forecast.calibration]\nenabled = false\n")   # Gaussian intervals: checked below as such
    db = tmp_path / "bt.sqlite"
    assert main(["backtest", "--config", str(config), "--data", str(tmp_path), "--db", str(db)]) == 0
    out = capsys.readouterr().out

    def grab(pattern: str) -> tuple[str, ...]:
        m = re.search(pattern, out)
        assert m, (pattern, out)
        return m.groups()

    equity = rows(db, "SELECT bar_ms, equity FROM equity ORDER BY bar_ms")
    e0, e1 = Decimal(str(equity[0][1])), Decimal(str(equity[-1][1]))
    fees = sum((Decimal(str(f)) for (f,) in rows(db, "SELECT fee FROM fills")), Decimal(0))
    fills = rows(db, "SELECT bar_ms, qty, price FROM fills")
    assert len(fills) >= 10 and fees > 0

    net, start, end, before = grab(r"net return ([-+.\d]+)% \(equity (\S+) -> (\S+)\), before fees ([-+.\d]+)%")
    assert (Decimal(start), Decimal(end)) == (e0, e1)
    assert float(net) == pytest.approx(float((e1 / e0 - 1) * 100), abs=0.006)
    assert float(before) == pytest.approx(float((e1 - e0 + fees) / e0 * 100), abs=0.006)

    fee_text, share, n_fills, with_fill, bars, turnover = grab(
        r"fees (\S+) = ([.\d]+)% of the starting equity; (\d+) fills on (\d+) of (\d+) bars .*turnover ([.\d]+)x")
    assert Decimal(fee_text) == fees
    assert float(share) == pytest.approx(float(fees / e0 * 100), abs=0.006)
    assert (int(n_fills), int(with_fill), int(bars)) == (len(fills), len({b for b, _, _ in fills}), len(equity))
    marks = np.array([float(e) for _, e in equity])
    notional = sum(abs(float(Decimal(str(q)) * Decimal(str(p)))) for _, q, p in fills)
    assert float(turnover) == pytest.approx(notional / marks.mean(), abs=0.006)
    r = marks[1:] / marks[:-1] - 1
    (sharpe,) = grab(r"Sharpe ([-.\d]+);")
    assert float(sharpe) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760), abs=0.006)

    closes = {(s, b): float(c) for s, b, c in rows(db, "SELECT symbol, bar_ms, close FROM candles")}
    scored = [(mu, sd, math.log(closes[(s, b + H)] / closes[(s, b)]))
              for b, s, mu, sd in rows(db, "SELECT bar_ms, symbol, mu, sigma FROM forecasts")
              if (s, b + H) in closes]
    mu, sd, y = (np.array(c) for c in zip(*scored))
    nll = np.mean(0.5 * math.log(2 * math.pi) + np.log(sd) + 0.5 * ((y - mu) / sd) ** 2)
    n, nll_text, c68, c95 = grab(r"forecasts \(baseline_ewma\): (\d+) scored, NLL ([-.\d]+)"
                                 r".*68% ([.\d]+)%, 95% ([.\d]+)%")
    assert int(n) == len(y)
    assert float(nll_text) == pytest.approx(nll, abs=6e-5)
    for text, level in ((c68, 0.68), (c95, 0.95)):
        z = NormalDist().inv_cdf(0.5 + level / 2)
        assert float(text) == pytest.approx(np.mean(np.abs(y - mu) <= z * sd) * 100, abs=0.006)


def test_a_fold_traded_from_its_fit_in_memory_equals_the_backtest_of_its_checkpoint(tmp_path: Path) -> None:
    """trade_range + serve_fitted (an evaluation fold's trading value) = bot train's checkpoint, backtested."""
    from bot.cli.models import train_checkpoint
    from bot.runs.backtest import series_floats
    from bot.runs.walkforward import serve_fitted, trade_range
    from strategies.dataset import FeatureStore, MarketSeries
    from strategies.workflow import fit_range

    data = generate_market(SYMBOLS, 430, START_MS, seed=4)
    series = [MarketSeries(s, data[s].open_ms, series_floats(data[s]), H) for s in SYMBOLS]
    split = START_MS + 400 * H
    base = settings(tmp_path / "unused.sqlite", model=TINY)
    store = FeatureStore(series, horizon=1)
    fitted = fit_range(store, "cnn_gru", base.model, START_MS, split, "cpu")
    mem = base.with_overrides(run={"db": str(tmp_path / "mem.sqlite"), "id": "mem"})
    in_memory = asyncio.run(trade_range(mem, data, split, None,
                                        serve_fitted(mem, "cnn_gru", fitted, store, START_MS, split, "cpu")))
    ckpt = tmp_path / "cnn_gru.pt"
    train_checkpoint(base, "cnn_gru", series, START_MS, split, ckpt, "cpu")   # CPU training is deterministic
    disk = base.with_overrides(run={"db": str(tmp_path / "disk.sqlite"), "id": "disk"},
                               model={**TINY, "checkpoint": str(ckpt)})
    from_checkpoint = asyncio.run(trade_range(disk, data, split, None))
    assert in_memory is not None and from_checkpoint is not None
    assert in_memory.bars == 30 and in_memory.model == "cnn_gru" and in_memory.forecasts > 0
    assert in_memory.fills > 0
    assert {**in_memory.to_json(), "run_id": ""} == {**from_checkpoint.to_json(), "run_id": ""}
    sql = "SELECT bar_ms, symbol, mu, sigma FROM forecasts ORDER BY 1, 2"
    assert rows(tmp_path / "mem.sqlite", sql) == rows(tmp_path / "disk.sqlite", sql)


@pytest.mark.parametrize("n_symbols,commit_every,batches", [
    (40, None, [50, 50, 36]),      # 2,000 bar-events / 40 symbols = 50 bars per transaction
    (2, None, [136]),              # 1,000 bars' worth, capped at 500 bars: the whole run at once
    (40, 100, [100, 36]),          # given: bars per transaction, whatever the symbols
])
def test_a_transaction_holds_about_two_thousand_bar_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           n_symbols: int, commit_every: int | None,
                                                           batches: list[int]) -> None:
    # The commit batch is sized in bar-events, so the tail written after the loop (and the records held in
    # memory) does not grow with the symbols.
    from bot.store.trade_store import TradeStore

    syms = [f"S{i:02d}/USDT" for i in range(n_symbols)]
    data = generate_market(syms, 64 + 136, START_MS, seed=3)
    seen: list[int] = []
    write_bars = TradeStore.write_bars

    async def counted(self: TradeStore, run_id: str, records: list[object]) -> int:
        seen.append(len(records))
        return await write_bars(self, run_id, records)  # type: ignore[arg-type]

    monkeypatch.setattr(TradeStore, "write_bars", counted)
    r = asyncio.run(run_backtest(settings(tmp_path / "bt.sqlite", market={"symbols": syms, "window": 64}), data,
                                 commit_every=commit_every, write_behind=False))
    assert r.bars == 136 and seen == batches
    assert rows(tmp_path / "bt.sqlite", "SELECT COUNT(DISTINCT bar_ms) FROM equity") == [(136,)]
