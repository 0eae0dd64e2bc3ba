"""The shared training loop: it learns a planted signal, repeats itself bit for bit, and augments causally."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from synthetic_market import HOUR_MS, T0_MS, ar1_market, ohlcv_from_returns

from strategies.dataset import FeatureStore, MarketSeries, split_ms
from strategies.features import N_FEATURES
from strategies.models.heads import gaussian_nll_loss
from strategies.models.neural import augment_batch, calm_noise, evaluate_nll, stretch_windows
from strategies.models.registry import new_forecaster
from strategies.settings import CnnGruSettings, LstmSettings, ModelSettings, MultiAssetSettings, TrainSettings

SETTINGS = ModelSettings(
    cnn_gru=CnnGruSettings(lookback=32, conv_channels=16, conv_layers=1, kernel_size=3, pool=2, gru_hidden=32,
                           gru_layers=2, dropout=0.1),
    lstm=LstmSettings(lookback=16, hidden1=32, hidden2=16, dropout=0.1),
    multi_asset=MultiAssetSettings(lookback=16, expert_hidden=16, coordinator_hidden=32, dropout=0.1),
    train=TrainSettings(epochs=6, patience=3, batch_size=64, max_steps_per_epoch=40, learning_rate=3e-3, seed=3))


def lead_lag_market(n: int, seed: int) -> list[MarketSeries]:
    """B has AR(1) memory; A follows B's previous return: both predictable, A only through B."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.01, size=(2, n))
    rb, ra = np.zeros(n), np.zeros(n)
    for i in range(1, n):
        rb[i] = 0.5 * rb[i - 1] + e[1, i]
        ra[i] = 0.6 * rb[i - 1] + 0.8 * e[0, i]
    ms = T0_MS + HOUR_MS * np.arange(n, dtype=np.int64)
    return [MarketSeries("A", ms, ohlcv_from_returns(ra, rng)), MarketSeries("B", ms, ohlcv_from_returns(rb, rng))]


def datasets(series: list[MarketSeries], lookback: int, aligned: bool = False, horizon: int = 1):
    store = FeatureStore(series, horizon=horizon)
    cuts = split_ms(store, [0.7, 0.3])
    scaler = store.fit_scaler(cuts[0], cuts[1])
    return (store.dataset(cuts[0], cuts[1], lookback, scaler, aligned),
            store.dataset(cuts[1], cuts[2], lookback, scaler, aligned))


def persistence_nll(train, val) -> float:
    """mu = 0, sigma = the training std of returns (per asset when aligned): the bar to clear."""
    sd = train.y().std(axis=0, keepdims=True)
    y = torch.from_numpy(val.y()).double()
    return gaussian_nll_loss(torch.zeros_like(y), torch.from_numpy(np.broadcast_to(sd, y.shape).copy()).double(),
                             y).item()


@pytest.fixture(scope="module")
def ar1_series() -> list[MarketSeries]:
    return [ar1_market("BTC/USDT", 3000, seed=11, phi=0.5)]


# --- learning ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["cnn_gru", "lstm"])
def test_recurrent_models_learn_ar1_returns_well_below_persistence(kind: str, ar1_series) -> None:
    train, val = datasets(ar1_series, getattr(SETTINGS, kind).lookback)
    fc = new_forecaster(kind, SETTINGS, N_FEATURES, ("BTC/USDT",))
    summary = fc.fit(train, val)
    base = persistence_nll(train, val)
    # The best achievable gain is -0.5·log(1 - φ²) ≈ 0.144 nats; a model that ignores the past gains 0.
    assert summary["best_val_nll"] < base - 0.07, (summary, base)
    assert evaluate_nll(fc.net, fc.net.head.nll, val) == summary["best_val_nll"]   # best weights restored


def test_multi_asset_learns_the_lead_lag_well_below_persistence() -> None:
    series = lead_lag_market(3000, seed=5)
    train, val = datasets(series, SETTINGS.multi_asset.lookback, aligned=True)
    fc = new_forecaster("multi_asset", SETTINGS, N_FEATURES, ("A", "B"))
    summary = fc.fit(train, val)
    base = persistence_nll(train, val)
    # Best gains: A 0.5·log(1/0.64) ≈ 0.22 (only via B's past), B ≈ 0.14; mean ≈ 0.18.
    assert summary["best_val_nll"] < base - 0.09, (summary, base)
    mu, _ = fc.predict_batch(torch.from_numpy(val.x()))
    r_b_now = val.x()[:, 1, -1, 0]                    # B's latest (normalised) return
    assert np.corrcoef(mu[:, 0, 0].numpy(), r_b_now)[0, 1] > 0.8     # A's forecast follows B's last move


# --- the loop -----------------------------------------------------------------------------------------------------

def quick_settings(**train_kw) -> ModelSettings:
    return replace(SETTINGS, train=replace(SETTINGS.train, epochs=2, max_steps_per_epoch=5, **train_kw))


def test_two_trainings_with_one_seed_are_bit_identical(ar1_series) -> None:
    s = quick_settings(augment=True, augment_noise=0.1, down_weight=2.0)
    train, val = datasets(ar1_series, s.cnn_gru.lookback)
    before = torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    runs = []
    for seed in (3, 3, 4):
        fc = new_forecaster("cnn_gru", replace(s, train=replace(s.train, seed=seed)), N_FEATURES, ("BTC/USDT",))
        summary = fc.fit(train, val)
        runs.append((fc.get_state()["net"], summary["best_val_nll"]))
    assert torch.equal(torch.get_rng_state(), before)                 # training forks the global RNG
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    (w1, nll1), (w2, nll2), (w3, _) = runs
    assert nll1 == nll2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_progress_reports_steps_and_epochs_and_the_summary_is_plain(ar1_series) -> None:
    s = quick_settings()
    train, val = datasets(ar1_series, s.lstm.lookback)
    events: list[tuple[str, dict]] = []
    summary = new_forecaster("lstm", s, N_FEATURES, ("BTC/USDT",)).fit(train, val, lambda e, i: events.append((e, i)))
    steps = [i for e, i in events if e == "step"]
    epochs = [i for e, i in events if e == "epoch"]
    assert [i["step"] for i in steps] == [1, 2, 3, 4, 5] * 2 and all(i["steps"] == 5 for i in steps)
    assert [i["epoch"] for i in epochs] == [1, 2]
    assert all(set(i) == {"epoch", "epochs", "train_nll", "val_nll", "seconds"} for i in epochs)
    assert summary["epochs_run"] == 2 and summary["samples_per_epoch"] == 5 * 64
    assert summary["best_val_nll"] == min(i["val_nll"] for i in epochs)
    assert summary["best_epoch"] == 1 + int(np.argmin([i["val_nll"] for i in epochs]))
    assert all(isinstance(v, (int, float, bool)) for v in summary.values())


def test_early_stopping_keeps_the_best_epoch(ar1_series) -> None:
    s = replace(SETTINGS, train=replace(SETTINGS.train, epochs=40, patience=1, max_steps_per_epoch=3,
                                        learning_rate=0.05))
    train, val = datasets(ar1_series, s.lstm.lookback)
    fc = new_forecaster("lstm", s, N_FEATURES, ("BTC/USDT",))
    summary = fc.fit(train, val)
    assert summary["stopped_early"] and summary["epochs_run"] == summary["best_epoch"] + 1
    assert evaluate_nll(fc.net, fc.net.head.nll, val) == summary["best_val_nll"]


def test_student_t_training_with_horizon_steps_runs_and_scores_finite(ar1_series) -> None:
    s = quick_settings(distribution="student_t", student_t_df=4.0)
    s = replace(s, cnn_gru=replace(s.cnn_gru, horizon=3))
    train, val = datasets(ar1_series, s.cnn_gru.lookback, horizon=3)
    fc = new_forecaster("cnn_gru", s, N_FEATURES, ("BTC/USDT",))
    assert math.isfinite(fc.fit(train, val)["best_val_nll"])
    mu, sigma = fc.predict_batch(torch.from_numpy(val.x(np.arange(10))))
    assert mu.shape == sigma.shape == (10, 3) and (sigma > s.train.sigma_floor_pct).all()


def test_mismatched_datasets_are_refused(ar1_series) -> None:
    train, val = datasets(ar1_series, 20)
    fc = new_forecaster("lstm", SETTINGS, N_FEATURES, ("BTC/USDT",))
    with pytest.raises(ValueError, match="lookback"):
        fc.fit(train, val)
    train, val = datasets(ar1_series, SETTINGS.multi_asset.lookback)        # pooled, not aligned
    with pytest.raises(ValueError, match="aligned"):
        new_forecaster("multi_asset", SETTINGS, N_FEATURES, ("BTC/USDT",)).fit(train, val)


# --- augmentation -------------------------------------------------------------------------------------------------

def test_stretching_keeps_the_decision_row_and_reads_only_the_window() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 20, N_FEATURES)).astype(np.float32)
    factors = np.array([0.9, 0.95, 1.0, 1.05, 1.1, 0.5])
    out = stretch_windows(x, factors)
    assert out.shape == x.shape
    assert np.array_equal(out[:, -1], x[:, -1])                  # the last row is the decision bar, untouched
    assert np.array_equal(out[2], x[2])                          # factor 1: identity
    ramp = np.broadcast_to(np.arange(20, dtype=np.float32)[None, :, None], (6, 20, 1))
    got = stretch_windows(ramp, factors)[..., 0]
    want = np.clip(19 - np.arange(19, -1, -1)[None, :] * factors[:, None], 0, 19)
    np.testing.assert_allclose(got, want, atol=1e-5)             # linear interpolation of the window's own rows
    aligned = rng.normal(size=(3, 2, 20, 4)).astype(np.float32)
    out4 = stretch_windows(aligned, factors[:3])
    assert np.array_equal(out4[:, :, -1], aligned[:, :, -1])
    np.testing.assert_array_equal(out4[:, 1], stretch_windows(aligned[:, 1], factors[:3]))


def test_noise_lands_only_in_calm_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 30, N_FEATURES)).astype(np.float32)
    out = calm_noise(x, 0.3, np.random.default_rng(2))
    a = np.abs(x[..., 0])
    calm = a < np.median(a, axis=-1, keepdims=True)
    changed = (out != x).any(axis=-1)
    assert np.array_equal(changed, calm)
    assert calm.sum() > 0


def test_augment_batch_is_seeded_float32_and_keeps_the_last_row_without_noise() -> None:
    x = np.random.default_rng(3).normal(size=(8, 16, N_FEATURES)).astype(np.float32)
    a = augment_batch(x, np.random.default_rng(9), 0.05, 0.05)
    b = augment_batch(x, np.random.default_rng(9), 0.05, 0.05)
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, x)
    c = augment_batch(x, np.random.default_rng(9), 0.2, 0.0)
    assert np.array_equal(c[:, -1], x[:, -1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_tracks_the_cpu_run(ar1_series) -> None:
    s = quick_settings()
    train, val = datasets(ar1_series, s.lstm.lookback)
    cpu = new_forecaster("lstm", s, N_FEATURES, ("BTC/USDT",))
    gpu = new_forecaster("lstm", s, N_FEATURES, ("BTC/USDT",)).to("cuda")
    a, b = cpu.fit(train, val), gpu.fit(train, val)
    assert gpu.device.type == "cuda"
    assert b["best_val_nll"] == pytest.approx(a["best_val_nll"], rel=1e-3)
    assert all(v.device.type == "cpu" for v in gpu.get_state()["net"].values())
