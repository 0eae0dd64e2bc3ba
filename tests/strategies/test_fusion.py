"""Recurrent + knn fusion on constructed member forecasts whose right answers are known.

Most tests fuse two :class:`ColumnForecaster` stand-ins, whose forecast is a
chosen feature column of the window's last row, so the members' quality in each
volatility regime is exactly what the test builds.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
import torch
from synthetic_market import window_dataset as dataset

from strategies.dataset import WindowDataset
from strategies.features import FEATURES
from strategies.models import registry
from strategies.models.fusion import RV, FusionForecaster, fit_alpha, gaussian_nll, mixture_moments
from strategies.models.knn import KnnForecaster

F = len(FEATURES)
HOUR = 3_600_000
K_COL, R_COL = FEATURES.index("ret"), FEATURES.index("range")    # where the stand-ins read their forecasts


class ColumnForecaster:
    """Stand-in member: μ = the last row's feature columns ``cols`` (one per step), σ a constant."""

    kind = "column"
    aligned = False

    def __init__(self, cols: tuple[int, ...], sigma: float = 0.5, lookback: int = 2) -> None:
        self.cols, self.sigma, self.lookback, self.horizon = tuple(cols), sigma, lookback, len(cols)
        self.fitted_lookbacks: list[int] = []
        self._device = torch.device("cpu")

    @classmethod
    def create(cls, settings: Any, n_features: int, symbols: tuple[str, ...]) -> ColumnForecaster:
        return cls((0,))

    def params(self) -> dict[str, Any]:
        return {"cols": list(self.cols), "sigma": self.sigma, "lookback": self.lookback}

    def get_state(self) -> dict[str, Any]:
        return {"scale": torch.ones(1)}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> ColumnForecaster:
        return cls(tuple(params["cols"]), params["sigma"], params["lookback"])

    def fit(self, train: WindowDataset, val: WindowDataset, progress: Any = None) -> dict[str, Any]:
        self.fitted_lookbacks += [train.lookback, val.lookback]
        return {"epochs": 0, "note": "stand-in"}

    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.shape[1] == self.lookback, f"member fed {x.shape[1]} rows, reads {self.lookback}"
        mu = x[:, -1, list(self.cols)]
        return mu, torch.full_like(mu, self.sigma)

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> ColumnForecaster:
        self._device = torch.device(device)
        return self


def regime_data(n: int, seed: int, knn_noise: tuple[float, float], rec_noise: tuple[float, float],
                lookback: int = 2) -> WindowDataset:
    """y = z + 0.3ε; each member forecasts z plus noise of std (calm, volatile) by regime; v uniform in ±2."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(-2.0, 2.0, n)
    z = rng.standard_normal(n)
    y = z + 0.3 * rng.standard_normal(n)
    volatile = v > 0
    feats = np.zeros((n, F))
    feats[:, RV] = v
    feats[:, K_COL] = z + np.where(volatile, knn_noise[1], knn_noise[0]) * rng.standard_normal(n)
    feats[:, R_COL] = z + np.where(volatile, rec_noise[1], rec_noise[0]) * rng.standard_normal(n)
    return dataset(feats, y, lookback, np.arange(lookback - 1, n))


def members() -> tuple[ColumnForecaster, ColumnForecaster]:
    return ColumnForecaster((R_COL,), lookback=2), ColumnForecaster((K_COL,), lookback=2)


def nll_of(model: Any, data: WindowDataset) -> float:
    mu, sigma = model.predict_batch(torch.from_numpy(data.x()))
    return gaussian_nll(mu, sigma, torch.from_numpy(data.y())).item()


@pytest.mark.parametrize(("knn_noise", "rec_noise", "sign"), [((1.0, 0.05), (0.05, 1.0), 1), ((0.05, 1.0), (1.0, 0.05), -1)])
def test_late_weight_trusts_the_member_that_is_better_in_the_regime(knn_noise, rec_noise, sign) -> None:
    val = regime_data(2000, seed=0, knn_noise=knn_noise, rec_noise=rec_noise)
    fusion = FusionForecaster(*members(), method="late")
    summary = fusion.fit(regime_data(50, seed=1, knn_noise=knn_noise, rec_noise=rec_noise), val)
    assert sign * summary["alpha_b"] > 1.0
    calm, volatile = fusion.alpha(torch.tensor(-1.5)).item(), fusion.alpha(torch.tensor(1.5)).item()
    assert (volatile - calm) * sign > 0.8
    assert summary["val_nll"] < min(summary["val_nll_knn"], summary["val_nll_recurrent"]) - 0.2


@pytest.mark.parametrize(("knn_noise", "rec_noise", "high"), [((0.0, 0.0), (2.0, 2.0), True),
                                                              ((2.0, 2.0), (0.0, 0.0), False)])
def test_late_weight_goes_to_the_perfect_member(knn_noise, rec_noise, high) -> None:
    val = regime_data(2000, seed=2, knn_noise=knn_noise, rec_noise=rec_noise)
    fusion = FusionForecaster(*members(), method="late")
    fusion.fit(val, val)
    alpha = fusion.alpha(torch.from_numpy(val.feats[val.ends, RV])).mean().item()
    assert alpha > 0.95 if high else alpha < 0.05


def test_fit_alpha_recovers_a_constant_weight_on_a_balanced_problem() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal((4000, 1))
    mu_k, mu_r = y + 0.5 * rng.standard_normal((4000, 1)), y + 0.5 * rng.standard_normal((4000, 1))
    sigma = np.full((4000, 1), 0.5)
    a, b, _ = fit_alpha(torch.from_numpy(mu_r), torch.from_numpy(sigma), torch.from_numpy(mu_k),
                        torch.from_numpy(sigma), torch.from_numpy(rng.uniform(-2, 2, 4000)), torch.from_numpy(y))
    assert abs(a) < 0.5 and abs(b) < 0.3      # two equally good members: α ≈ ½ whatever the regime


def test_mixture_moments_match_sampling_the_mixture() -> None:
    gen = torch.Generator().manual_seed(4)
    alpha, mu_k, s_k, mu_r, s_r = 0.3, 1.0, 0.5, -1.0, 2.0
    n = 400_000
    pick = torch.rand(n, generator=gen, dtype=torch.float64) < alpha
    draws = torch.where(pick, mu_k + s_k * torch.randn(n, generator=gen, dtype=torch.float64),
                        mu_r + s_r * torch.randn(n, generator=gen, dtype=torch.float64))
    mu, sigma = mixture_moments(*(torch.tensor(t, dtype=torch.float64) for t in (alpha, mu_k, s_k, mu_r, s_r)))
    assert draws.mean().item() == pytest.approx(mu.item(), abs=4 * sigma.item() / n ** 0.5)
    assert draws.std().item() == pytest.approx(sigma.item(), rel=0.01)
    assert sigma.item() > alpha * s_k + (1 - alpha) * s_r           # the spread of the means adds variance


def test_late_forecast_is_the_mixture_of_the_member_forecasts() -> None:
    data = regime_data(300, seed=5, knn_noise=(0.5, 0.1), rec_noise=(0.1, 0.5))
    fusion = FusionForecaster(*members(), method="late")
    fusion.fit(data, data)
    x = torch.from_numpy(data.x())
    mu, sigma = fusion.predict_batch(x)
    alpha = fusion.alpha(x[:, -1, RV]).unsqueeze(1)
    ref_mu, ref_sigma = mixture_moments(alpha, x[:, -1, [K_COL]], torch.tensor(0.5), x[:, -1, [R_COL]],
                                        torch.tensor(0.5))
    assert torch.allclose(mu, ref_mu) and torch.allclose(sigma, ref_sigma)


def test_stacking_beats_both_members_when_the_better_one_changes_by_regime() -> None:
    noise = {"knn_noise": (1.0, 0.05), "rec_noise": (0.05, 1.0)}
    fusion = FusionForecaster(*members(), method="stacking", seed=1)
    summary = fusion.fit(regime_data(50, seed=6, **noise), regime_data(1500, seed=7, **noise))
    test = regime_data(2000, seed=8, **noise)
    worse = max(nll_of(fusion.recurrent, test), nll_of(fusion.knn, test))
    better = min(nll_of(fusion.recurrent, test), nll_of(fusion.knn, test))
    stacked = nll_of(fusion, test)
    assert stacked < better - 0.3 < worse
    assert summary["scored_on"] == "val_tail" and summary["val_nll"] < summary["val_nll_knn"]
    assert 0 < summary["meta_best_step"] <= summary["meta_steps"]


@pytest.mark.parametrize("method", ["late", "stacking"])
def test_multi_step_fusion_with_a_knn_member_round_trips_through_a_checkpoint(method, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(registry.KINDS, "column", (ColumnForecaster.__module__, "ColumnForecaster"))
    rng = np.random.default_rng(9)
    n = 1600
    feats = rng.standard_normal((n, F))
    targets = np.stack([feats[:, R_COL] + 0.5 * rng.standard_normal(n), np.roll(feats[:, K_COL], -1)], axis=1)
    train = dataset(feats, targets, 30, np.arange(29, 1200))
    val = dataset(feats, targets, 30, np.arange(1230, n - 1))
    recurrent = ColumnForecaster((R_COL, K_COL), lookback=3)
    fusion = FusionForecaster(recurrent, KnnForecaster(F, lookback=30, k=0, k_grid=(5, 40)), method=method)
    assert fusion.lookback == 30 and fusion.horizon == 2
    summary = fusion.fit(train, val)
    assert recurrent.fitted_lookbacks == [3, 3]                    # members read their own lookback
    assert summary["knn_k"] in (5, 40) and summary["recurrent_note"] == "stand-in"
    x = torch.from_numpy(val.x())
    mu, sigma = fusion.predict_batch(x)
    assert mu.shape == sigma.shape == (len(val), 2) and bool((sigma > 0).all())
    path = tmp_path / "fusion.pt"
    torch.save({"params": fusion.params(), "state": fusion.get_state()}, path)
    raw = torch.load(path, weights_only=True)
    again = registry.forecaster_from_state("fusion", raw["params"], raw["state"])
    mu2, sigma2 = again.predict_batch(x)
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)


def test_unknown_method_and_tiny_validation_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        FusionForecaster(*members(), method="average")
    data = regime_data(5, seed=10, knn_noise=(1, 1), rec_noise=(1, 1))
    with pytest.raises(ValueError, match="validation"):
        FusionForecaster(*members()).fit(data, data)


@pytest.mark.skipif(importlib.util.find_spec("strategies.models.cnn_gru") is None,
                    reason="strategies.models.cnn_gru (CnnGruForecaster) is not written yet")
def test_fusion_of_a_real_cnn_gru_and_knn_trains_and_round_trips(tmp_path) -> None:
    from strategies.dataset import FeatureStore, MarketSeries
    from strategies.settings import CnnGruSettings, FusionSettings, KnnSettings, ModelSettings, TrainSettings

    rng = np.random.default_rng(11)
    n = 2400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    ohlcv = np.stack([close, close * 1.004, close * 0.996, close, rng.uniform(1, 2, n)], axis=1)
    store = FeatureStore([MarketSeries("A", np.arange(n, dtype=np.int64) * HOUR, ohlcv)])
    settings = ModelSettings(
        name="fusion", fusion=FusionSettings(method="late", recurrent="cnn_gru"),
        cnn_gru=CnnGruSettings(lookback=16, conv_channels=4, conv_layers=1, gru_hidden=8, gru_layers=1),
        knn=KnnSettings(lookback=26, k_grid=(10, 50)),
        train=TrainSettings(epochs=2, max_steps_per_epoch=10, batch_size=64))
    fusion = FusionForecaster.create(settings, F, ("A",))
    assert fusion.lookback == 26
    scaler = store.fit_scaler(0, 1800 * HOUR)
    train = store.dataset(0, 1800 * HOUR, fusion.lookback, scaler)
    val = store.dataset(1800 * HOUR, n * HOUR, fusion.lookback, scaler)
    summary = fusion.fit(train, val)
    assert np.isfinite(summary["val_nll"]) and np.isfinite(summary["alpha_b"])
    x = torch.from_numpy(val.x())
    mu, sigma = fusion.predict_batch(x)
    assert mu.shape == (len(val), 1) and bool((sigma > 0).all())
    path = tmp_path / "fusion.pt"
    torch.save({"params": fusion.params(), "state": fusion.get_state()}, path)
    raw = torch.load(path, weights_only=True)
    mu2, sigma2 = FusionForecaster.from_state(raw["params"], raw["state"]).predict_batch(x)
    assert torch.allclose(mu, mu2) and torch.allclose(sigma, sigma2)
