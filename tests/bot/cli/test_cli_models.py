"""`bot train` and `bot evaluate` from CSV files, as a user runs them (tiny shapes, generated data)."""

from __future__ import annotations

import json
import math

import pytest

from bot.cli import main
from bot.feeds.replay.csvdata import write_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
TINY = """
[market]
symbols = ["BTC/USDT", "ETH/USDT"]
window = 64

[model]
device = "cpu"

[model.cnn_gru]
lookback = 24
conv_channels = 4
gru_hidden = 8
gru_layers = 2

[model.lstm]
lookback = 12
hidden1 = 8
hidden2 = 4

[model.knn]
k_grid = [5, 20]
lookback = 30

[model.multi_asset]
lookback = 16
expert_hidden = 4
coordinator_hidden = 8

[model.train]
epochs = 2
max_steps_per_epoch = 4
batch_size = 32
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("csv")
    market = generate_market(SYMBOLS, 1200, 1_704_067_200_000, seed=3)
    for sym, series in market.items():
        write_ohlcv_csv(d / f"{sym.replace('/', '')}-1h.csv", series)
    (d / "config.toml").write_text(TINY)
    return d


def test_train_saves_a_checkpoint_and_prints_a_first_forecast(data_dir, tmp_path, capsys):
    out = tmp_path / "m.pt"
    rc = main(["train", "--data", str(data_dir), "--model", "cnn_gru", "--out", str(out),
               "--config", str(data_dir / "config.toml")])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert text.count("mu ") == 2 and "BTC/USDT" in text and "ETH/USDT" in text
    assert f'checkpoint = "{out}"' in text and "market.window ≥ 49" in text


def test_train_names_missing_symbols(data_dir, tmp_path, capsys):
    rc = main(["train", "--data", str(data_dir), "--symbols", "SOL/USDT", "--out", str(tmp_path / "x.pt"),
               "--config", str(data_dir / "config.toml")])
    assert rc == 3
    assert "no CSV for SOL/USDT" in capsys.readouterr().err


def test_evaluate_scores_every_model_and_baseline_on_the_same_bars(data_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    models = ["cnn_gru", "lstm", "knn", "fusion_late", "fusion_stacking", "multi_asset"]
    rc = main(["evaluate", "--data", str(data_dir), "--models", *models, "--folds", "2",
               "--json", str(out), "--config", str(data_dir / "config.toml")])
    assert rc == 0
    result = json.loads(out.read_text())
    assert set(result["scores"]) == set(SYMBOLS)
    for by_model in result["scores"].values():
        assert set(by_model) == {*models, "persistence", "garch"}
        ns = {m["n"] for m in by_model.values()}
        assert len(ns) == 1 and ns.pop() > 100          # one common set of bars per symbol
        for name, m in by_model.items():
            assert all(math.isfinite(m[k]) for k in ("mape", "rmse", "nll", "crps", "cov68", "cov95")), name
            assert 0.0 <= m["cov68"] <= m["cov95"] <= 1.0
        # Persistence forecasts the last close: its MAPE is the mean absolute next-bar move.
        assert by_model["persistence"]["mape"] > 0
    assert len(result["folds"]) == 2
    assert result["folds"][0]["test"][1] == result["folds"][1]["test"][0]
    assert {f["model"] for f in result["fits"]} == set(models)
    table = capsys.readouterr().out
    assert "garch" in table and "fusion_stacking" in table


def test_run_without_a_checkpoint_says_what_to_run(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nname = "cnn_gru"\n')
    rc = main(["run", "--config", str(cfg), "--db", str(tmp_path / "t.sqlite")])
    err = capsys.readouterr().err
    assert rc == 2 and "bot train --data" in err and "--model cnn_gru" in err
    assert not (tmp_path / "t.sqlite").exists()        # refused before the trade log was opened


def test_parallel_jobs_give_the_same_scores_as_one_process(data_dir, tmp_path):
    """--jobs trains models in separate processes, each with its share of the CPU threads.

    Training is deterministic on the CPU; only the thread count differs, which may change float sums in the
    last bits, so the scores agree to 1e-6, not bit for bit.
    """
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"eval{jobs}.json"
        assert main(["evaluate", "--data", str(data_dir), "--models", "lstm", "knn", "--folds", "2",
                     "--jobs", jobs, "--json", str(out), "--config", str(data_dir / "config.toml")]) == 0
        outs.append(json.loads(out.read_text())["scores"])
    for sym, by_model in outs[0].items():
        for name, m in by_model.items():
            assert outs[1][sym][name] == pytest.approx(m, rel=1e-6, abs=1e-9), (sym, name)


def test_evaluate_trading_trades_the_held_out_range_with_each_fold_model(data_dir, tmp_path, capsys):
    import sqlite3

    out, db = tmp_path / "eval.json", tmp_path / "trading.sqlite"
    rc = main(["evaluate", "--data", str(data_dir), "--models", "cnn_gru", "multi_asset", "--folds", "2",
               "--json", str(out), "--config", str(data_dir / "config.toml"), "--trading", str(db)])
    assert rc == 0
    result = json.loads(out.read_text())
    folds = result["folds"]
    start, end = folds[0]["test"][0], folds[-1]["test"][1]
    by_model = {r["model"]: r for r in result["trading"]}
    assert list(by_model) == ["baseline", "cnn_gru", "multi_asset"]
    with sqlite3.connect(db) as conn:
        for label, r in by_model.items():
            marks = conn.execute("SELECT MIN(bar_ms), MAX(bar_ms), COUNT(*) FROM equity WHERE run_id = ?",
                                 (r["run_id"],)).fetchone()
            assert marks == (start, end - 3_600_000, (end - start) // 3_600_000) == (marks[0], marks[1], r["bars"])
            models = {m for (m,) in conn.execute("SELECT DISTINCT model FROM forecasts WHERE run_id = ?",
                                                 (r["run_id"],))}
            assert models == ({"baseline_ewma"} if label == "baseline" else {label})
            assert -1.0 < r["net_return"] and 0.0 <= r["fill_share"] <= 1.0
    # One refit per fold, each on the fold's own training range, served from its test block on.
    for label in ("cnn_gru", "multi_asset"):
        assert [(f["train"], f["test"]) for f in by_model[label]["refits"]] == [(f["train"], f["test"]) for f in folds]
    text = capsys.readouterr().out
    assert "trading the held-out range" in text and "multi_asset" in text.split("trading the held-out range")[1]
