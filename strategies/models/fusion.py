"""Recurrent + knn fusion: two member forecasters and a rule, fitted on validation forecasts, that merges them.

Each member maps the last ``member.lookback`` rows of a window ``(B, L, F)`` to
``(μ, σ)``, each ``(B, h)``, percent log returns; the fusion reads
``L = max(member lookbacks)`` rows.  ``v`` is the window's latest normalised
realised volatility (feature ``rv_24``, a z-score of the training range).

``late``: a volatility-dependent weight on the knn member, and the moments of
the two-component mixture ``α·N(μ_k, σ_k²) + (1 − α)·N(μ_r, σ_r²)``::

    α(v) = sigmoid(a + b·v)
    μ    = α·μ_k + (1 − α)·μ_r
    σ²   = α·σ_k² + (1 − α)·σ_r² + α·(1 − α)·(μ_k − μ_r)²

``a, b`` minimise the Gaussian NLL of ``(μ, σ)`` over the validation forecasts:
a 25 × 25 grid over [−6, 6]², then Adam from the best grid point (kept within
±``AB_MAX``).  ``b > 0`` means "trust knn more when volatile".

``stacking``: a small meta-model (:class:`StackingHead`: one hidden layer of 16
units plus a linear skip path) reads ``μ_r, log σ_r, μ_k, log σ_k`` of every
step and ``v`` and outputs ``μ`` and ``σ = softplus(·) + floor``; trained by
Gaussian NLL on the earliest ``1 − TAIL_SHARE`` of the validation samples (by
decision time) with early stopping on the latest ``TAIL_SHARE``.

Fitting: members are trained on ``train`` (each on a view of the same samples
with its own lookback, using ``val`` for their own early stopping and choices),
then the fusion parameters are fitted on the members' forecasts over ``val``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from strategies.dataset import WindowDataset
from strategies.features import FEATURES
from strategies.models.base import Forecaster, Progress, forecast_dataset
from strategies.models.registry import forecaster_from_state, new_forecaster

RV = FEATURES.index("rv_24")    # column of the volatility feature that drives α and feeds the meta-model
METHODS = ("late", "stacking")
AB_MAX = 20.0                   # |a|, |b| bound of the late-fusion weight (α saturates long before)
TAIL_SHARE = 0.2                # latest share of the validation samples kept for the meta-model's early stopping
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SOFTPLUS_ONE = math.log(math.e - 1.0)   # softplus(_SOFTPLUS_ONE) = 1


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run tiny full-batch fits single-threaded: at these sizes intra-op threads only add synchronisation, which
    costs 10-40x on a busy machine (measured on 2 shared cores); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gaussian_nll(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood over every element (natural log, constant included)."""
    return (_HALF_LOG_2PI + sigma.log() + 0.5 * ((y - mu) / sigma).square()).mean()


def mixture_moments(alpha: torch.Tensor, mu_k: torch.Tensor, sigma_k: torch.Tensor, mu_r: torch.Tensor,
                    sigma_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of ``α·N(μ_k, σ_k²) + (1 − α)·N(μ_r, σ_r²)``, elementwise (broadcasting)."""
    mu = alpha * mu_k + (1.0 - alpha) * mu_r
    var = alpha * sigma_k.square() + (1.0 - alpha) * sigma_r.square() + alpha * (1.0 - alpha) * (mu_k - mu_r).square()
    return mu, var.sqrt()


def fit_alpha(mu_r: torch.Tensor, sigma_r: torch.Tensor, mu_k: torch.Tensor, sigma_k: torch.Tensor,
              v: torch.Tensor, y: torch.Tensor, steps: int = 300) -> tuple[float, float, float]:
    """Fit ``α(v) = sigmoid(a + b·v)`` by validation NLL: forecasts and targets ``(N, h)``, ``v`` ``(N,)``
    → (a, b, nll)."""
    with _one_thread():
        return _fit_alpha(mu_r, sigma_r, mu_k, sigma_k, v, y, steps)


def _fit_alpha(mu_r: torch.Tensor, sigma_r: torch.Tensor, mu_k: torch.Tensor, sigma_k: torch.Tensor,
               v: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float, float]:
    args = [torch.as_tensor(t, dtype=torch.float64).cpu() for t in (mu_r, sigma_r, mu_k, sigma_k, y)]
    mr, sr, mk, sk, yy = args
    vv = torch.as_tensor(v, dtype=torch.float64).cpu().reshape(-1, 1)

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:    # a, b: (G, 1, 1) → (G,)
        mu, sigma = mixture_moments(torch.sigmoid(a + b * vv), mk, sk, mr, sr)
        return (_HALF_LOG_2PI + sigma.log() + 0.5 * ((yy - mu) / sigma).square()).mean(dim=(-2, -1))

    grid = torch.linspace(-6.0, 6.0, 25, dtype=torch.float64)
    with torch.no_grad():
        table = torch.stack([loss(a.reshape(1, 1, 1), grid.reshape(-1, 1, 1)) for a in grid])   # (a, b)
    flat = int(torch.argmin(table))
    best = (float(grid[flat // len(grid)]), float(grid[flat % len(grid)]), float(table.flatten()[flat]))
    ab = torch.tensor(best[:2], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([ab], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        value = loss(ab[0].reshape(1, 1, 1), ab[1].reshape(1, 1, 1))[0]
        if float(value.detach()) < best[2]:
            a, b = ab.detach().tolist()
            best = (a, b, float(value.detach()))
        value.backward()
        opt.step()
        with torch.no_grad():
            ab.clamp_(-AB_MAX, AB_MAX)
    return best


class StackingHead(nn.Module):
    """Meta-model: members' ``(μ, σ)`` ``(B, h)`` each and ``v`` ``(B,)`` → fused ``(μ, σ)`` ``(B, h)``, percent."""

    def __init__(self, horizon: int, hidden: int = 16, sigma_floor: float = 0.01) -> None:
        super().__init__()
        n_in = 4 * horizon + 1
        self.horizon, self.sigma_floor = horizon, sigma_floor
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, 2 * horizon))
        self.skip = nn.Linear(n_in, 2 * horizon)
        self.in_mean: torch.Tensor      # buffers: the input and target normalisation, fitted with the weights
        self.in_std: torch.Tensor
        self.y_mean: torch.Tensor
        self.y_std: torch.Tensor
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.register_buffer("y_mean", torch.zeros(horizon))
        self.register_buffer("y_std", torch.ones(horizon))

    @staticmethod
    def inputs(mu_r: torch.Tensor, sigma_r: torch.Tensor, mu_k: torch.Tensor, sigma_k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """``(B, 4h + 1)``: μ_r, log σ_r, μ_k, log σ_k (each ``h`` columns), v."""
        return torch.cat([mu_r, sigma_r.log(), mu_k, sigma_k.log(), v.reshape(-1, 1)], dim=1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (z - self.in_mean) / self.in_std
        out = self.mlp(z) + self.skip(z)
        h = self.horizon
        mu = self.y_mean + self.y_std * out[:, :h]
        sigma = self.y_std * F.softplus(out[:, h:] + _SOFTPLUS_ONE) + self.sigma_floor
        return mu, sigma


def fit_stacking(head: StackingHead, z: torch.Tensor, y: torch.Tensor, tail: torch.Tensor, seed: int,
                 max_steps: int = 1500, check_every: int = 10, patience: int = 20) -> dict[str, Any]:
    """Full-batch Adam on the rows of ``z`` ``(N, 4h+1)``/``y`` ``(N, h)`` outside the boolean ``tail`` ``(N,)``;
    early stopping and the best weights by NLL on the tail rows."""
    with _one_thread():
        return _fit_stacking(head, z, y, tail, seed, max_steps, check_every, patience)


def _fit_stacking(head: StackingHead, z: torch.Tensor, y: torch.Tensor, tail: torch.Tensor, seed: int,
                  max_steps: int, check_every: int, patience: int) -> dict[str, Any]:
    fit_z, fit_y, tail_z, tail_y = z[~tail], y[~tail], z[tail], y[tail]
    with torch.no_grad():
        head.in_mean.copy_(fit_z.mean(dim=0))
        head.in_std.copy_(fit_z.std(dim=0).clamp_min(1e-6))
        head.y_mean.copy_(fit_y.mean(dim=0))
        head.y_std.copy_(fit_y.std(dim=0).clamp_min(1e-6))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in head.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    best_nll, best_step, best_state, waited, step = math.inf, 0, None, 0, 0
    head.train()
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        mu, sigma = head(fit_z)
        gaussian_nll(mu, sigma, fit_y).backward()
        opt.step()
        if step % check_every:
            continue
        with torch.no_grad():
            tail_mu, tail_sigma = head(tail_z)
            nll = float(gaussian_nll(tail_mu, tail_sigma, tail_y))
        if nll < best_nll - 1e-6:
            best_nll, best_step, waited = nll, step, 0
            best_state = {k: t.detach().clone() for k, t in head.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return {"meta_steps": step, "meta_best_step": best_step, "val_nll": best_nll}


def _view(data: WindowDataset, lookback: int) -> WindowDataset:
    """The same samples read with a shorter lookback (a member's own window)."""
    return WindowDataset(data.symbols, lookback, data.horizon, data.feats, data.targets, data.close, data.open_ms,
                         data.ends, data.starts)


def _plain(prefix: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}


class FusionForecaster:
    """A recurrent member and a knn member (any two :class:`Forecaster`\\ s) fused by ``late`` or ``stacking``."""

    kind = "fusion"
    aligned = False

    def __init__(self, recurrent: Forecaster, knn: Forecaster, method: str = "late", seed: int = 7,
                 sigma_floor: float = 0.01) -> None:
        if method not in METHODS:
            raise ValueError(f"fusion method must be one of {METHODS}, got {method!r}")
        self.recurrent, self.knn = recurrent, knn
        self.method, self.seed, self.sigma_floor = method, seed, sigma_floor
        self.lookback = max(recurrent.lookback, knn.lookback)
        self.horizon = recurrent.horizon
        self.alpha_ab = torch.zeros(2)              # (a, b) of the late weight; α = ½ until fitted
        self.meta: StackingHead | None = None

    @classmethod
    def create(cls, settings: Any, n_features: int, symbols: tuple[str, ...]) -> FusionForecaster:
        """Members from ``ModelSettings`` via the registry: ``fusion.recurrent`` and ``knn``."""
        recurrent = new_forecaster(settings.fusion.recurrent, settings, n_features, symbols)
        knn = new_forecaster("knn", settings, n_features, symbols)
        knn.horizon = recurrent.horizon      # the knn takes its horizon from the data; say it up front
        return cls(recurrent, knn, method=settings.fusion.method, seed=settings.train.seed,
                   sigma_floor=settings.train.sigma_floor_pct)

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "sigma_floor": self.sigma_floor, "horizon": self.horizon,
                "recurrent_kind": self.recurrent.kind, "recurrent_params": self.recurrent.params(),  # type: ignore[attr-defined]
                "knn_kind": self.knn.kind, "knn_params": self.knn.params()}  # type: ignore[attr-defined]

    def get_state(self) -> dict[str, Any]:
        meta = {} if self.meta is None else {k: t.detach().cpu() for k, t in self.meta.state_dict().items()}
        return {"recurrent": self.recurrent.get_state(), "knn": self.knn.get_state(),
                "alpha_ab": self.alpha_ab.detach().cpu(), "meta": meta}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> FusionForecaster:
        recurrent = forecaster_from_state(params["recurrent_kind"], params["recurrent_params"], state["recurrent"])
        knn = forecaster_from_state(params["knn_kind"], params["knn_params"], state["knn"])
        model = cls(recurrent, knn, method=params["method"], seed=params["seed"], sigma_floor=params["sigma_floor"])
        model.horizon = int(params["horizon"])
        model.alpha_ab = state["alpha_ab"].to(torch.float32)
        if state["meta"]:
            model.meta = StackingHead(model.horizon, sigma_floor=model.sigma_floor)
            model.meta.load_state_dict(state["meta"])
            model.meta.eval()
        return model

    @property
    def device(self) -> torch.device:
        return self.recurrent.device

    def to(self, device: torch.device | str) -> FusionForecaster:
        self.recurrent, self.knn = self.recurrent.to(device), self.knn.to(device)
        self.alpha_ab = self.alpha_ab.to(device)
        if self.meta is not None:
            self.meta.to(device)
        return self

    def alpha(self, v: torch.Tensor) -> torch.Tensor:
        """Late-fusion weight on the knn member for volatility features ``v`` (any shape)."""
        return torch.sigmoid(self.alpha_ab[0] + self.alpha_ab[1] * v)

    def _combine(self, mu_r: torch.Tensor, sigma_r: torch.Tensor, mu_k: torch.Tensor, sigma_k: torch.Tensor,
                 v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method == "stacking":
            if self.meta is None:
                raise RuntimeError("stacking fusion has no meta-model: fit() it or load it with from_state()")
            return self.meta(StackingHead.inputs(mu_r, sigma_r, mu_k, sigma_k, v))
        mu, sigma = mixture_moments(self.alpha(v).unsqueeze(-1), mu_k, sigma_k, mu_r, sigma_r)
        return mu, sigma.clamp_min(self.sigma_floor)

    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L, F)`` float32 windows (``L ≥ lookback``) → fused (μ, σ) each ``(B, h)``, percent."""
        with torch.no_grad():
            x = x.to(self.device)
            mu_r, sigma_r = self.recurrent.predict_batch(x[:, -self.recurrent.lookback:])
            mu_k, sigma_k = self.knn.predict_batch(x[:, -self.knn.lookback:])
            return self._combine(mu_r, sigma_r, mu_k, sigma_k, x[:, -1, RV])

    def fit(self, train: WindowDataset, val: WindowDataset, progress: Progress | None = None) -> dict[str, Any]:
        """Train both members on ``train``, then the fusion parameters on their forecasts over ``val``."""
        t0 = time.perf_counter()
        if len(val) < 10:
            raise ValueError(f"fusion needs validation samples to fit its weights; got {len(val)}")
        summary: dict[str, Any] = {"method": self.method}
        for name, member in (("recurrent", self.recurrent), ("knn", self.knn)):
            if progress:
                progress("message", {"text": f"fusion: training the {member.kind} member"})
            summary.update(_plain(name, member.fit(_view(train, member.lookback), _view(val, member.lookback),
                                                   progress)))
        if self.knn.horizon != self.recurrent.horizon or self.recurrent.horizon != val.horizon:
            raise ValueError(f"member horizons {self.recurrent.horizon} (recurrent), {self.knn.horizon} (knn) and "
                             f"the data's {val.horizon} must agree")
        self.horizon = val.horizon
        recurrent_view = _view(val, self.recurrent.lookback)
        mu_r, sigma_r = (torch.from_numpy(a) for a in forecast_dataset(self.recurrent, recurrent_view))
        mu_k, sigma_k = (torch.from_numpy(a) for a in forecast_dataset(self.knn, _view(val, self.knn.lookback)))
        v = torch.from_numpy(val.feats[val.ends, RV].astype(np.float64))
        y = torch.from_numpy(val.y().astype(np.float64))
        if self.method == "late":
            a, b, nll = fit_alpha(mu_r, sigma_r, mu_k, sigma_k, v, y)
            self.alpha_ab = torch.tensor([a, b], dtype=torch.float32, device=self.device)
            scored = torch.ones(len(y), dtype=torch.bool)
            summary.update(alpha_a=a, alpha_b=b, alpha_mean=float(torch.sigmoid(a + b * v).mean()), val_nll=nll)
        else:
            order = np.argsort(val.decision_ms(), kind="stable")
            scored = torch.zeros(len(y), dtype=torch.bool)
            scored[torch.from_numpy(order[-max(1, round(TAIL_SHARE * len(order))):])] = True
            head = StackingHead(self.horizon, sigma_floor=self.sigma_floor)
            z = StackingHead.inputs(mu_r, sigma_r, mu_k, sigma_k, v).float()
            summary.update(fit_stacking(head, z, y.float(), scored, self.seed))
            self.meta = head.to(self.device)
        summary.update(
            scored_on="val" if self.method == "late" else "val_tail",
            val_nll_recurrent=float(gaussian_nll(mu_r[scored], sigma_r[scored], y[scored])),
            val_nll_knn=float(gaussian_nll(mu_k[scored], sigma_k[scored], y[scored])),
            seconds=time.perf_counter() - t0)
        return summary
