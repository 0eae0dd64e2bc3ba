"""Historical analogs: the K training bars most like the current one, and what followed them.

Every sample (a window ``(L, F)`` of normalised feature rows, ``F`` = ``len(FEATURES)``)
is summarised as one *analog vector* of ``D = F + 2·S`` numbers:

* the last row's features (latest return, range, body, volume change, 24-bar
  momentum, realised volatility, RSI, MACD), and
* the mean of ``ret`` and of ``vol_rel`` over the last ``w`` rows for each
  sub-window ``w`` in ``(4, 12, L)`` (``S`` = 3 by default), so short and long
  context both count.

The vectors of the training samples, standardised per component with the
library's own mean and standard deviation so every component weighs alike,
form the *library*, together with each sample's targets ``(N, h)`` (next log
returns in percent).  Only the latest ``max_library`` samples by decision time
are kept.

A query vector ``q`` is compared with every library vector by Euclidean
distance; the ``K`` nearest ``d_1 ≤ … ≤ d_K`` (targets ``y_i``, each ``(h,)``) give,
per forecast step::

    w_i   ∝ 1 / (d_i + δ),   δ = 0.01·mean(d) + 1e-6          (inverse distance, normalised to Σw = 1;
                                                               δ keeps an exact match finite)
    μ     = Σ w_i y_i
    s²    = Σ w_i (y_i − μ)²                                  (weighted variance of the neighbours)
    n_eff = 1 / Σ w_i²                                        (Kish's effective number of neighbours)
    σ²    = (n_eff·s² + τ·σ²_lib) / (n_eff + τ),  τ = SHRINK  (shrink towards the library's variance:
                                                               a few neighbours, or one dominant one,
                                                               cannot claim a tiny σ)
    σ     = max(√σ², sigma_floor)

The search runs on the library's device with a matrix product per chunk of the
library and a running ``topk`` merge, so a ``B × N`` distance matrix never
exists at once; the K winners' distances are then recomputed exactly.
``predict_batch`` is pure tensor ops with shapes fixed by ``B``: no host sync,
so it can be captured as a CUDA graph.

**Choosing K.**  With ``k = 0`` the fit scores every K of ``k_grid`` (those not
larger than the library) by the mean Gaussian NLL of its forecasts over the
validation samples (at most ``MAX_VAL_QUERIES``, evenly spaced) and keeps the
best; one search with the largest K serves every candidate.  Only ``val`` is
scored.  A library bar can never be its own neighbour there: ``val`` is a
later, disjoint range, so no validation sample is in the library (scoring K on
the training samples themselves would always pick K = 1).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from strategies.dataset import WindowDataset
from strategies.features import FEATURES
from strategies.models.base import Progress

SUB_WINDOWS = (4, 12)       # short sub-windows of the lookback averaged into the vector (plus the whole lookback)
SUMMARISED = ("ret", "vol_rel")
SHRINK = 4.0                # τ: pseudo-neighbours at the library's variance added to every σ estimate
MAX_VAL_QUERIES = 20_000    # validation samples scored per K candidate in the K search
CHUNK_ELEMS = 1 << 22       # distances per library chunk on CPU (16 MiB of float32: cache- and allocator-friendly)
CHUNK_ELEMS_CUDA = 1 << 26  # on CUDA (256 MiB): fewer, larger kernels; one chunk for ≤ 400 queries × 150k bars
_BATCH = 4096               # samples per batch while building the library and scoring K
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def sub_windows(lookback: int) -> tuple[int, ...]:
    """Sub-window lengths (rows) averaged into the analog vector for a given lookback."""
    return tuple(sorted({min(w, lookback) for w in SUB_WINDOWS} | {lookback}))


def analog_vectors(x: torch.Tensor, lookback: int) -> torch.Tensor:
    """``(B, L', F)`` normalised windows (``L' ≥ lookback``) → ``(B, D)`` raw analog vectors."""
    x = x[:, -lookback:]
    parts = [x[:, -1, :]]
    for name in SUMMARISED:
        col = FEATURES.index(name)
        parts += [x[:, -w:, col].mean(dim=1, keepdim=True) for w in sub_windows(lookback)]
    return torch.cat(parts, dim=1)


def weighted_moments(dist: torch.Tensor, targets: torch.Tensor, var_lib: torch.Tensor, sigma_floor: float,
                     shrink: float = SHRINK) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour distances ``(B, K)`` and targets ``(B, K, h)`` → (μ, σ) each ``(B, h)``, percent (see module doc)."""
    delta = 0.01 * dist.mean(dim=1, keepdim=True) + 1e-6
    w = 1.0 / (dist + delta)
    w = w / w.sum(dim=1, keepdim=True)
    mu = (w.unsqueeze(-1) * targets).sum(dim=1)
    s2 = (w.unsqueeze(-1) * (targets - mu.unsqueeze(1)).square()).sum(dim=1)
    n_eff = 1.0 / w.square().sum(dim=1, keepdim=True)
    var = (n_eff * s2 + shrink * var_lib) / (n_eff + shrink)
    return mu, var.sqrt().clamp_min(sigma_floor)


def gaussian_nll(mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log-likelihood (natural log, constant included)."""
    return _HALF_LOG_2PI + sigma.log() + 0.5 * ((y - mu) / sigma).square()


class KnnForecaster:
    """Distance-weighted K-nearest-analog forecaster; see the module docstring for the method."""

    kind = "knn"
    aligned = False

    def __init__(self, n_features: int, lookback: int = 48, horizon: int = 1, k: int = 0,
                 k_grid: tuple[int, ...] = (10, 25, 50, 100, 200, 400), max_library: int = 200_000,
                 sigma_floor: float = 0.01, shrink: float = SHRINK, symbols: tuple[str, ...] = ()) -> None:
        if n_features != len(FEATURES):
            raise ValueError(f"knn analog vectors need the {len(FEATURES)} features {FEATURES}, got {n_features}")
        if k == 0 and not k_grid:
            raise ValueError("knn: k = 0 asks for a validation search but k_grid is empty")
        if k < 0 or any(c < 1 for c in k_grid):
            raise ValueError(f"knn: k and the k_grid entries must be positive, got k={k}, k_grid={list(k_grid)}")
        self.n_features = n_features
        self.lookback = lookback
        self.horizon = horizon
        self.k_setting = k
        self.k_grid = tuple(int(c) for c in k_grid)
        self.max_library = max_library
        self.sigma_floor = sigma_floor
        self.shrink = shrink
        self.symbols = tuple(symbols)
        self.k = k                                  # K in use; set by fit() when k_setting is 0
        self._device = torch.device("cpu")
        self._lib: torch.Tensor | None = None       # (N, D) float32 standardised analog vectors
        self._lib_sq = torch.zeros(0)               # (N,) their squared norms
        self._lib_y = torch.zeros(0, horizon)       # (N, h) float32 targets, percent
        self._center = torch.zeros(0)               # (D,) library mean of the raw vectors
        self._scale = torch.zeros(0)                # (D,) library std of the raw vectors
        self._var_lib = torch.zeros(0)              # (h,) variance of the library targets

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, settings: Any, n_features: int, symbols: tuple[str, ...]) -> KnnForecaster:
        """From ``ModelSettings``: ``[model.knn]`` plus ``train.sigma_floor_pct``; the horizon comes from the data."""
        s = settings.knn
        return cls(n_features, lookback=s.lookback, k=s.k, k_grid=tuple(s.k_grid), max_library=s.max_library,
                   sigma_floor=settings.train.sigma_floor_pct, symbols=symbols)

    def params(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "lookback": self.lookback, "horizon": self.horizon,
                "k": self.k_setting, "k_grid": list(self.k_grid), "max_library": self.max_library,
                "sigma_floor": self.sigma_floor, "shrink": self.shrink, "symbols": list(self.symbols)}

    def get_state(self) -> dict[str, Any]:
        lib = self._require_library()
        return {"k": self.k, "library": lib.cpu(), "library_targets": self._lib_y.cpu(),
                "center": self._center.cpu(), "scale": self._scale.cpu(), "target_var": self._var_lib.cpu()}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> KnnForecaster:
        p = dict(params)
        model = cls(p.pop("n_features"), k_grid=tuple(p.pop("k_grid")), symbols=tuple(p.pop("symbols")), **p)
        model._set_library(state["library"], state["library_targets"], state["center"], state["scale"],
                           state["target_var"])
        model.k = int(state["k"])
        return model

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> KnnForecaster:
        self._device = torch.device(device)
        if self._lib is not None:
            self._set_library(self._lib, self._lib_y, self._center, self._scale, self._var_lib)
        return self

    @property
    def library_size(self) -> int:
        return 0 if self._lib is None else int(self._lib.shape[0])

    def _set_library(self, lib: torch.Tensor, lib_y: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                     var_lib: torch.Tensor) -> None:
        dev, f32 = self._device, torch.float32
        self._lib = lib.to(dev, f32).contiguous()
        self._lib_sq = self._lib.square().sum(dim=1)
        self._lib_y = lib_y.to(dev, f32).contiguous()
        self._center, self._scale = center.to(dev, f32), scale.to(dev, f32)
        self._var_lib = var_lib.to(dev, f32)
        self.horizon = int(self._lib_y.shape[1])

    def _require_library(self) -> torch.Tensor:
        if self._lib is None:
            raise RuntimeError("knn forecaster has no library: fit() it or load it with from_state()")
        return self._lib

    # -- inference ------------------------------------------------------------------------------------
    def query_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, F)`` windows → ``(B, D)`` standardised analog vectors on the library's device."""
        x = x.to(self._device, torch.float32)
        return (analog_vectors(x, self.lookback) - self._center) / self._scale

    def neighbours(self, x: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest library samples of each window: distances and library rows, each ``(B, k)``,
        nearest first."""
        lib = self._require_library()
        k = min(self.k if k is None else k, lib.shape[0])
        with torch.no_grad():
            return self._search(self.query_vectors(x), k)

    def _search(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised queries ``(B, D)`` → exact distances and library rows of the ``k`` nearest, ``(B, k)``."""
        lib = self._require_library()
        n, b = lib.shape[0], q.shape[0]
        elems = CHUNK_ELEMS_CUDA if q.is_cuda else CHUNK_ELEMS
        chunk = max(k, min(n, max(4096, elems // max(b, 1))))
        q_sq = q.square().sum(dim=1, keepdim=True)
        best_d: torch.Tensor | None = None
        best_i: torch.Tensor | None = None
        for start in range(0, n, chunk):       # Python loop over a fixed number of chunks: graph-capturable
            part = lib[start:start + chunk]
            d2 = torch.addmm(q_sq + self._lib_sq[start:start + chunk], q, part.T, alpha=-2.0)
            d, i = d2.topk(min(k, part.shape[0]), dim=1, largest=False, sorted=False)
            i = i + start
            if best_d is not None and best_i is not None:
                d, pos = torch.cat([best_d, d], dim=1).topk(k, dim=1, largest=False, sorted=False)
                i = torch.cat([best_i, i], dim=1).gather(1, pos)
            best_d, best_i = d, i
        assert best_i is not None
        exact = (lib[best_i] - q.unsqueeze(1)).norm(dim=-1)    # (B, k): the matmul form loses digits near 0
        exact, order = exact.sort(dim=1)
        return exact, best_i.gather(1, order)

    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, L, F)`` float32 windows → (μ, σ) each ``(B, h)``, percent log returns."""
        lib = self._require_library()
        with torch.no_grad():
            dist, rows = self._search(self.query_vectors(x), min(self.k, lib.shape[0]))
            return weighted_moments(dist, self._lib_y[rows], self._var_lib, self.sigma_floor, self.shrink)

    # -- fitting --------------------------------------------------------------------------------------
    def fit(self, train: WindowDataset, val: WindowDataset, progress: Progress | None = None) -> dict[str, Any]:
        """Build the library from ``train`` and, when ``k`` is 0, choose K by validation NLL on ``val``."""
        t0 = time.perf_counter()
        if train.aligned or val.aligned:
            raise ValueError("knn forecasts one symbol per sample; aligned (multi-asset) datasets are not supported")
        if train.lookback < self.lookback or val.lookback < self.lookback:
            raise ValueError(f"knn reads {self.lookback} rows; datasets give {train.lookback} and {val.lookback}")
        if len(train) == 0:
            raise ValueError("knn: the training range has no samples")
        if val.horizon != train.horizon:
            raise ValueError(f"train horizon {train.horizon} and val horizon {val.horizon} differ")
        order = np.argsort(train.decision_ms(), kind="stable")[-self.max_library:]
        idx = np.sort(order)
        raw = torch.cat([analog_vectors(torch.from_numpy(train.x(idx[a:a + _BATCH])).to(self._device),
                                        self.lookback) for a in range(0, len(idx), _BATCH)])
        center, scale = raw.mean(dim=0), raw.std(dim=0).clamp_min(1e-6)
        y = torch.from_numpy(train.y(idx)).to(torch.float64)
        self._set_library((raw - center) / scale, y, center, scale, y.var(dim=0, correction=0))
        n = self.library_size
        if progress:
            progress("message", {"text": f"knn: library of {n} analogs ({raw.shape[1]} numbers each)"})
        summary: dict[str, Any] = {"library": n, "vector_size": int(raw.shape[1])}
        if self.k_setting == 0:
            grid = sorted({min(c, n) for c in self.k_grid})
            if len(val) == 0:
                raise ValueError("knn: k = 0 asks for a validation search but the validation range has no samples")
            nll = self.validation_nll(val, grid, progress)
            best = int(np.argmin(nll))
            self.k = grid[best]
            summary.update(k_grid=grid, val_nll_by_k=[float(v) for v in nll], val_nll=float(nll[best]))
        else:
            self.k = min(self.k_setting, n)
            if len(val):
                summary["val_nll"] = float(self.validation_nll(val, [self.k], progress)[0])
        summary.update(k=self.k, seconds=time.perf_counter() - t0)
        return summary

    def validation_nll(self, val: WindowDataset, ks: list[int], progress: Progress | None = None) -> np.ndarray:
        """Mean Gaussian NLL over ``val`` (≤ MAX_VAL_QUERIES evenly spaced samples, all steps) for each K in ``ks``."""
        lib = self._require_library()
        ks = [min(k, lib.shape[0]) for k in ks]
        n = len(val)
        idx = np.unique(np.linspace(0, n - 1, min(n, MAX_VAL_QUERIES)).round().astype(np.int64))
        sums = torch.zeros(len(ks), dtype=torch.float64)
        steps = math.ceil(len(idx) / _BATCH)
        with torch.no_grad():
            for s, a in enumerate(range(0, len(idx), _BATCH)):
                part = idx[a:a + _BATCH]
                dist, rows = self._search(self.query_vectors(torch.from_numpy(val.x(part))), max(ks))
                y = torch.from_numpy(val.y(part)).to(self._device, torch.float32)
                targets = self._lib_y[rows]
                for j, k in enumerate(ks):
                    mu, sigma = weighted_moments(dist[:, :k], targets[:, :k], self._var_lib, self.sigma_floor,
                                                 self.shrink)
                    sums[j] += gaussian_nll(mu, sigma, y).sum().double().cpu()
                if progress:
                    progress("step", {"step": s + 1, "steps": steps})
        return (sums / (len(idx) * val.horizon)).numpy()
