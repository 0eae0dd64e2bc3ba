"""The neural forecasters and their heads: shapes, floors, likelihoods, checkpoints, MC dropout, multi-asset gates."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from strategies.features import N_FEATURES
from strategies.models.heads import (
    GaussianHead,
    StudentTHead,
    down_weights,
    gaussian_nll_loss,
    make_head,
    student_t_nll_loss,
    student_t_scale,
    student_t_sd,
)
from strategies.models.multi_asset import MultiAssetNet
from strategies.models.registry import forecaster_from_state, new_forecaster
from strategies.settings import CnnGruSettings, LstmSettings, ModelSettings, MultiAssetSettings, TrainSettings

SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")
FLOOR = 0.05


def small_settings(horizon: int = 1, distribution: str = "gaussian", mc: int = 0, dropout: float = 0.1,
                   seed: int = 7) -> ModelSettings:
    return ModelSettings(
        cnn_gru=CnnGruSettings(lookback=24, conv_channels=8, conv_layers=2, kernel_size=3, pool=2, gru_hidden=16,
                               gru_layers=3, dropout=dropout, horizon=horizon),
        lstm=LstmSettings(lookback=12, hidden1=16, hidden2=8, dropout=dropout, horizon=horizon),
        multi_asset=MultiAssetSettings(lookback=12, expert_hidden=8, coordinator_hidden=16, dropout=dropout),
        train=TrainSettings(distribution=distribution, mc_dropout_samples=mc, sigma_floor_pct=FLOOR, seed=seed))


def make(kind: str, **kw) -> object:
    return new_forecaster(kind, small_settings(**kw), N_FEATURES, SYMBOLS)


def inputs(fc, batch: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, len(SYMBOLS), fc.lookback, N_FEATURES) if fc.aligned else (batch, fc.lookback, N_FEATURES)
    return torch.randn(shape, generator=g)


# --- shapes and floors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["cnn_gru", "lstm"])
@pytest.mark.parametrize("horizon", [1, 4])
def test_pooled_models_give_one_mu_and_sigma_per_step(kind: str, horizon: int) -> None:
    fc = make(kind, horizon=horizon)
    assert (fc.kind, fc.horizon, fc.aligned) == (kind, horizon, False)
    mu, sigma = fc.predict_batch(inputs(fc, batch=6))
    assert mu.shape == sigma.shape == (6, horizon)
    assert mu.dtype == sigma.dtype == torch.float32
    assert (sigma > FLOOR).all() and torch.isfinite(mu).all()
    assert not mu.requires_grad and not fc.net.training


@pytest.mark.parametrize("kind", ["cnn_gru", "lstm", "multi_asset"])
def test_wrong_input_shapes_are_refused(kind: str) -> None:
    fc = make(kind)
    x = inputs(fc)
    with pytest.raises(ValueError, match="expects input"):
        fc.predict_batch(x[..., :-1, :])
    with pytest.raises(ValueError, match="expects input"):
        fc.predict_batch(x[0])


def test_sigma_keeps_its_floor_for_any_head_output() -> None:
    for head in (GaussianHead(4, 2, FLOOR), StudentTHead(4, 2, FLOOR, df=3.0)):
        with torch.no_grad():
            head.linear.bias.fill_(-1e4)
        _, sigma = head(torch.zeros(3, 4))
        assert (sigma >= FLOOR).all()
        assert sigma.min().item() == pytest.approx(FLOOR, rel=1e-6)


def test_a_lookback_too_short_for_the_pooling_names_the_settings() -> None:
    s = small_settings()
    s = replace(s, cnn_gru=replace(s.cnn_gru, lookback=8, pool=4, conv_layers=2))
    with pytest.raises(ValueError, match="lookback=8.*conv_layers=2.*pool=4"):
        new_forecaster("cnn_gru", s, N_FEATURES, SYMBOLS)


def test_cnn_gru_reads_the_newest_rows_of_a_window_not_divisible_by_the_pool() -> None:
    s = small_settings()
    s = replace(s, cnn_gru=replace(s.cnn_gru, lookback=25, pool=4, conv_layers=1))
    fc = new_forecaster("cnn_gru", s, N_FEATURES, SYMBOLS)
    x = inputs(fc)
    y = x.clone()
    y[:, -1] += 3.0
    assert not torch.equal(fc.predict_batch(x)[0], fc.predict_batch(y)[0])


# --- multi-asset -----------------------------------------------------------------------------------------------

def test_multi_asset_maps_every_asset_to_its_own_forecast() -> None:
    fc = make("multi_asset")
    assert fc.aligned and fc.symbols == SYMBOLS and fc.horizon == 1
    mu, sigma = fc.predict_batch(inputs(fc, batch=4))
    assert mu.shape == sigma.shape == (4, len(SYMBOLS), 1)
    assert (sigma > FLOOR).all()
    with pytest.raises(ValueError, match="expects input"):      # a different number of assets
        fc.predict_batch(torch.zeros(4, 2, fc.lookback, N_FEATURES))


def test_multi_asset_horizon_shapes() -> None:
    s = MultiAssetSettings(lookback=10, expert_hidden=4, coordinator_hidden=8, dropout=0.0)
    net = MultiAssetNet(2, N_FEATURES, s, 3, make_head("gaussian", 2 * 4 + 8, 2 * 3, FLOOR)).eval()
    mu, sigma = net(torch.randn(5, 2, 10, N_FEATURES))
    assert mu.shape == sigma.shape == (5, 2, 3)


def test_multi_asset_gates_start_neutral_and_stay_in_range() -> None:
    fc = make("multi_asset")
    w = fc.importance()
    assert w.shape == (len(SYMBOLS), N_FEATURES)
    assert torch.equal(w, torch.ones_like(w))
    with torch.no_grad():
        fc.net.gate_logits.normal_(0, 50)
    w = fc.importance()
    assert ((w >= 0) & (w <= 2)).all()


def test_one_assets_forecast_depends_on_the_others_and_gates_get_gradients() -> None:
    fc = make("multi_asset", dropout=0.0)
    x = inputs(fc)
    y = x.clone()
    y[:, 2] += 1.0                                # move only the third asset's inputs
    mu_x, _ = fc.predict_batch(x)
    mu_y, _ = fc.predict_batch(y)
    assert not torch.equal(mu_x[:, 0], mu_y[:, 0])     # the first asset's forecast sees it (lead-lag path)
    fc.net.train()
    mu, sigma = fc.net(x)
    fc.net.head.nll(mu, sigma, torch.zeros_like(mu)).backward()
    grad = fc.net.gate_logits.grad
    assert grad is not None and grad.shape == (len(SYMBOLS), N_FEATURES) and (grad != 0).any()


# --- likelihoods ----------------------------------------------------------------------------------------------

def test_gaussian_nll_is_the_normal_log_density() -> None:
    g = torch.Generator().manual_seed(1)
    mu, y = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(40, 3, generator=g, dtype=torch.float64)
    sigma = torch.rand(40, 3, generator=g, dtype=torch.float64) + 0.1
    ref = -torch.distributions.Normal(mu, sigma).log_prob(y)
    assert torch.allclose(gaussian_nll_loss(mu, sigma, y, reduction="none"), ref)
    assert gaussian_nll_loss(mu, sigma, y).item() == pytest.approx(ref.mean().item(), rel=1e-12)
    w = torch.rand(40, 3, generator=g, dtype=torch.float64)
    assert gaussian_nll_loss(mu, sigma, y, w, "sum").item() == pytest.approx((w * ref).sum().item(), rel=1e-12)


@pytest.mark.parametrize("df", [2.5, 5.0, 30.0])
def test_student_t_nll_and_sd_match_torch_distributions(df: float) -> None:
    g = torch.Generator().manual_seed(2)
    mu, y = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64) * 3
    scale = torch.rand(50, generator=g, dtype=torch.float64) + 0.2
    dist = torch.distributions.StudentT(df, mu, scale)
    assert torch.allclose(student_t_nll_loss(mu, scale, y, df, reduction="none"), -dist.log_prob(y))
    assert torch.allclose(student_t_sd(scale, df), dist.variance.sqrt())
    assert torch.allclose(student_t_scale(student_t_sd(scale, df), df), scale)


def test_student_t_head_reports_the_standard_deviation_and_scores_with_its_scale() -> None:
    head = StudentTHead(6, 2, FLOOR, df=4.0)
    mu, sigma = head(torch.randn(7, 6))
    scale = student_t_scale(sigma, 4.0)
    assert torch.allclose(sigma, torch.distributions.StudentT(4.0, mu, scale).variance.sqrt(), rtol=1e-5)
    y = torch.randn(7, 2)
    ref = -torch.distributions.StudentT(4.0, mu, scale).log_prob(y).mean()
    assert head.nll(mu, sigma, y).item() == pytest.approx(ref.item(), rel=1e-5)


def test_down_weights_scale_the_loss_of_down_moves_only() -> None:
    y = torch.tensor([[-1.0], [0.5], [-0.2], [2.0]])
    mu, sigma = torch.zeros_like(y), torch.ones_like(y)
    assert down_weights(y, 1.0) is None
    w = down_weights(y, 3.0)
    assert w.flatten().tolist() == [3.0, 1.0, 3.0, 1.0]
    per = gaussian_nll_loss(mu, sigma, y, reduction="none").flatten()
    expected = (3 * per[0] + per[1] + 3 * per[2] + per[3]) / 4
    assert gaussian_nll_loss(mu, sigma, y, w).item() == pytest.approx(expected.item(), rel=1e-6)
    assert gaussian_nll_loss(mu, sigma, y, w).item() > gaussian_nll_loss(mu, sigma, y).item()


# --- checkpoints ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,extra", [("cnn_gru", {"horizon": 2}), ("lstm", {"distribution": "student_t"}),
                                        ("multi_asset", {}), ("cnn_gru", {"mc": 3})])
def test_state_round_trips_through_a_weights_only_file(kind: str, extra: dict, tmp_path) -> None:
    fc = make(kind, **extra)
    with torch.no_grad():                             # weights unlike a fresh model with the same seed
        for p in fc.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fc.summary = {"best_val_nll": 1.25, "epochs_run": 3}
    path = tmp_path / "model.pt"
    torch.save({"params": fc.params(), "state": fc.get_state()}, path)
    raw = torch.load(path, weights_only=True)
    back = forecaster_from_state(kind, raw["params"], raw["state"])
    assert (back.kind, back.lookback, back.horizon, back.symbols) == (fc.kind, fc.lookback, fc.horizon, fc.symbols)
    assert back.summary == fc.summary and back.mc_samples == fc.mc_samples
    x = inputs(fc)
    for a, b in zip(fc.predict_batch(x), back.predict_batch(x)):
        assert torch.equal(a, b)


def test_the_same_seed_builds_the_same_network_and_leaves_the_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a, b, c = make("cnn_gru"), make("cnn_gru"), make("cnn_gru", seed=8)
    assert torch.equal(torch.get_rng_state(), before)
    x = inputs(a)
    assert torch.equal(a.predict_batch(x)[0], b.predict_batch(x)[0])
    assert not torch.equal(a.predict_batch(x)[0], c.predict_batch(x)[0])


# --- MC dropout -----------------------------------------------------------------------------------------------

def test_mc_dropout_combines_the_passes_and_widens_sigma() -> None:
    fc = make("cnn_gru", mc=40, dropout=0.5)
    x = inputs(fc, batch=64)
    mu, sigma = fc.predict_batch(x)
    assert mu.shape == sigma.shape == (64, 1) and not fc.net.training
    mu2, sigma2 = fc.predict_batch(x)
    assert torch.equal(mu, mu2) and torch.equal(sigma, sigma2)      # seeded: reproducible
    fc.net.train()                                                  # the definition, pass by pass
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(fc.train_settings.seed)
        passes = [fc.net(x) for _ in range(40)]
    fc.net.eval()
    mus = torch.stack([m for m, _ in passes])
    var = torch.stack([s * s for _, s in passes]).mean(0) + mus.var(0, unbiased=False)
    assert torch.allclose(mu, mus.mean(0), atol=1e-6) and torch.allclose(sigma, var.sqrt(), atol=1e-6)
    fc.mc_samples = 0
    mu0, sigma0 = fc.predict_batch(x)
    assert sigma.mean() > sigma0.mean()
    assert (sigma * sigma > torch.stack([s * s for _, s in passes]).mean(0)).all()   # the spread of mus adds


def test_to_moves_the_model_and_reports_its_device() -> None:
    fc = make("lstm")
    assert fc.to("cpu") is fc and fc.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["cnn_gru", "lstm", "multi_asset"])
def test_predict_batch_can_be_captured_as_a_cuda_graph(kind: str) -> None:
    fc = make(kind).to("cuda")
    static_x = inputs(fc, batch=8).cuda()
    eager = fc.predict_batch(static_x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fc.predict_batch(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        mu, sigma = fc.predict_batch(static_x)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.allclose(mu, eager[0], atol=1e-5) and torch.allclose(sigma, eager[1], atol=1e-5)
    assert math.isfinite(float(sigma.sum()))
