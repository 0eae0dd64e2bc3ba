"""Checkpoints and serving: the engine's path gives the evaluation's numbers, and a wrong file is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from synthetic_market import HOUR_MS, T0_MS
from tiny_models import SYMBOLS, N, tiny_market, tiny_settings, train_and_save

from bot.errors import ConfigError
from strategies.checkpoint import check_compatible, load_checkpoint
from strategies.features import WARMUP
from strategies.models.base import forecast_dataset
from strategies.predictor import TorchPredictor, resolve_device
from strategies.registry import build_predictor


@pytest.fixture(scope="module")
def market():
    return tiny_market()


@pytest.mark.parametrize("kind", ["cnn_gru", "lstm", "knn", "multi_asset"])
def test_engine_path_matches_evaluation_path(tmp_path, market, kind):
    """The predictor (raw windows → features → model) gives the dataset path's forecasts after a file round trip."""
    path, fitted, store = train_and_save(tmp_path, market, kind)
    ckpt = load_checkpoint(path)
    pred = TorchPredictor(ckpt, "cpu")
    test = fitted.dataset(store, T0_MS + 700 * HOUR_MS, T0_MS + N * HOUR_MS)
    mu, sigma = forecast_dataset(fitted.forecaster, test)
    for k in (0, len(test) // 2, len(test) - 1):
        ends = test.ends[k] if test.aligned else np.array([test.ends[k]])
        # The engine's rolling window: the raw bars ending at the decision bar.
        offsets = [int(e) - int(store.starts[store.starts <= e].max()) for e in ends]
        syms = SYMBOLS if test.aligned else (SYMBOLS[test.symbol_index()[k]],)
        windows = np.stack([market[SYMBOLS.index(s)].ohlcv[o - pred.min_window + 1:o + 1]
                            for s, o in zip(syms, offsets)])
        got = pred.predict(int(test.decision_ms()[k].min()), syms, windows)
        exp_mu = mu[k, :, 0] if test.aligned else mu[k, :1]
        exp_sigma = sigma[k, :, 0] if test.aligned else sigma[k, :1]
        np.testing.assert_allclose([f.mu * 100 for f in got], exp_mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([f.sigma * 100 for f in got], exp_sigma, rtol=1e-5, atol=1e-6)
        assert all(f.model == kind for f in got)


def test_forecast_ignores_every_later_bar(tmp_path, market):
    path, _, _ = train_and_save(tmp_path, market, "cnn_gru")
    pred = TorchPredictor(load_checkpoint(path), "cpu")
    t = 800
    base = market[0].ohlcv[: t + 1]
    changed = market[0].ohlcv.copy()
    changed[t + 1:] *= 3.0
    w1 = base[-pred.min_window:][None]
    w2 = changed[: t + 1][-pred.min_window:][None]
    a, b = pred.predict(0, ("BTC/USDT",), w1)[0], pred.predict(0, ("BTC/USDT",), w2)[0]
    assert (a.mu, a.sigma) == (b.mu, b.sigma)
    # ... and a change inside the window does move it.
    w3 = w1.copy()
    w3[0, -1, 3] *= 1.05
    assert pred.predict(0, ("BTC/USDT",), w3)[0].mu != a.mu


def test_multi_asset_serves_symbols_in_any_order(tmp_path, market):
    path, _, _ = train_and_save(tmp_path, market, "multi_asset")
    pred = TorchPredictor(load_checkpoint(path), "cpu")
    w = np.stack([m.ohlcv[500 - pred.min_window:500] for m in market])
    fwd = {f.symbol: f for f in pred.predict(0, SYMBOLS, w)}
    rev = {f.symbol: f for f in pred.predict(0, SYMBOLS[::-1], w[::-1].copy())}
    assert fwd == rev
    with pytest.raises(ValueError, match="needs every one"):
        pred.predict(0, SYMBOLS[:1], w[:1])


def test_checkpoint_records_what_it_was_trained_on(tmp_path, market):
    path, fitted, _ = train_and_save(tmp_path, market, "cnn_gru")
    ckpt = load_checkpoint(path)
    assert ckpt.symbols == SYMBOLS and ckpt.timeframe == "1h" and ckpt.kind == "cnn_gru"
    assert ckpt.data_range["BTC/USDT"] == (T0_MS, T0_MS + 699 * HOUR_MS)
    assert ckpt.code_version and ckpt.created
    np.testing.assert_array_equal(ckpt.scaler.mean, fitted.scaler.mean)
    assert ckpt.min_window == 24 + WARMUP


def test_mismatches_are_refused_with_what_differs_and_what_to_run(tmp_path, market):
    path, _, _ = train_and_save(tmp_path, market, "cnn_gru")
    ckpt = load_checkpoint(path)
    p = str(path)
    with pytest.raises(ConfigError, match=r"trained on symbols \['BTC/USDT', 'ETH/USDT'\].*bot train --data"):
        check_compatible(ckpt, p, "cnn_gru", ("BTC/USDT", "SOL/USDT"), "1h", 200)
    with pytest.raises(ConfigError, match="holds a 'cnn_gru' model but \\[model\\] name is 'lstm'"):
        check_compatible(ckpt, p, "lstm", SYMBOLS, "1h", 200)
    with pytest.raises(ConfigError, match="trained on features"):
        check_compatible(dataclasses.replace(ckpt, features=("ret",)), p, "cnn_gru", SYMBOLS, "1h", 200)
    with pytest.raises(ConfigError, match="trained on 1h bars but \\[market\\] timeframe is '4h'"):
        check_compatible(ckpt, p, "cnn_gru", SYMBOLS, "4h", 200)
    with pytest.raises(ConfigError, match="market.window.*at least 49"):
        check_compatible(ckpt, p, "cnn_gru", SYMBOLS, "1h", 48)
    check_compatible(ckpt, p, "cnn_gru", SYMBOLS[::-1], "1h", 49)     # order does not matter


def test_foreign_and_damaged_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match="not a sigma-bot model checkpoint"):
        load_checkpoint(other)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_build_predictor_needs_a_checkpoint_and_says_what_to_run(tmp_path, market):
    with pytest.raises(ConfigError, match=r"model.checkpoint' is empty.*bot train --data .* --model lstm"):
        build_predictor(tiny_settings("lstm"))
    path, _, _ = train_and_save(tmp_path, market, "cnn_gru")
    pred = build_predictor(tiny_settings("cnn_gru", str(path)))
    assert isinstance(pred, TorchPredictor) and pred.min_window == 24 + WARMUP
    with pytest.raises(ConfigError, match="does not match"):
        build_predictor(tiny_settings("cnn_gru", str(path)).with_overrides(market={"symbols": ["BTC/USDT"]}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="model.device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
