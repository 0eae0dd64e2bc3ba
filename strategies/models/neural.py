"""Training of the neural forecasters, and the shell they share (cnn_gru, lstm, multi_asset).

:func:`fit_network` is the one training loop: AdamW with gradient clipping,
each epoch a fresh random draw of up to ``max_steps_per_epoch × batch_size``
training samples, the validation NLL after each epoch, early stopping after
``patience`` epochs without a better one, and the best weights restored at the
end.  Batches are gathered on the CPU from the :class:`WindowDataset` and moved
to the network's device.  With the same seed it is bit-for-bit repeatable on
the CPU (``torch.use_deterministic_algorithms`` is on while it runs).

NLLs are per bar and per horizon step (per asset, for multi-asset samples), in
nats, on percent log returns, with the full normalising constant.

:class:`NeuralForecaster` implements the forecaster contract
(``strategies.models.base``) and the registry's classmethods once; each model
module supplies only its network.  A network maps ``x`` (B, L, F) or
(B, A, L, F) to ``(mu, sigma)`` of shape (B, h) or (B, A, h) and exposes its
distribution head as ``.head`` (see ``strategies.models.heads``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from strategies.dataset import WindowDataset
from strategies.models.base import Progress
from strategies.models.heads import GaussianHead, down_weights
from strategies.settings import ModelSettings, TrainSettings

GRAD_CLIP = 1.0       # max global gradient norm: one bad hour (a flash crash) must not wreck the weights
EVAL_BATCH = 2048     # samples per validation forward pass
RET_FEATURE = 0       # column of the "ret" feature (strategies.features.FEATURES[0]) that marks calm rows

Nll = Callable[..., torch.Tensor]   # (mu, sigma, y, weights=None, reduction="mean") → loss


# --- causal augmentation -------------------------------------------------------------------------------------

def stretch_windows(x: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Rescale each window's time axis by ``factors`` (B,), reading only the window's own rows.

    ``x`` is (B, L, F) or (B, A, L, F).  Output row ``L-1-j`` is the linear
    interpolation of the input at position ``L-1-j·factor``, clamped at row 0:
    the last row (the decision bar) is kept exactly, a factor below 1 stretches
    the recent past over more rows, above 1 squeezes more of it in.
    """
    length = x.shape[-2]
    back = np.arange(length - 1, -1, -1, dtype=np.float64)                  # rows before the last, per output row
    pos = np.clip((length - 1) - back[None, :] * factors[:, None], 0.0, length - 1)   # (B, L)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    w = (pos - lo).astype(x.dtype)
    shape = (x.shape[0],) + (1,) * (x.ndim - 3) + (length, 1)               # broadcast over assets and features
    lo, hi, w = lo.reshape(shape), hi.reshape(shape), w.reshape(shape)
    return np.take_along_axis(x, lo, axis=-2) * (1 - w) + np.take_along_axis(x, hi, axis=-2) * w


def calm_noise(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, noise²) (in feature standard deviations) to the rows whose |ret| is below the window's median."""
    a = np.abs(x[..., RET_FEATURE])                                            # (..., L)
    calm = a < np.median(a, axis=-1, keepdims=True)
    eps = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(noise)
    return x + eps * calm[..., None]


def augment_batch(x: np.ndarray, rng: np.random.Generator, scale: float, noise: float) -> np.ndarray:
    """Random time-axis scaling within ±``scale`` per window, then noise in calm rows; float32, causal."""
    if scale > 0:
        x = stretch_windows(x, 1.0 + rng.uniform(-scale, scale, size=(x.shape[0],)))
    if noise > 0:
        x = calm_noise(x, noise, rng)
    return x.astype(np.float32, copy=False)


# --- the training loop ---------------------------------------------------------------------------------------

def _to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


@contextmanager
def _training_mode(device: torch.device, seed: int) -> Iterator[None]:
    """Seeded RNG (restored afterwards), deterministic kernels on CPU, TF32 off on CUDA (CPU parity)."""
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    deterministic = torch.are_deterministic_algorithms_enabled()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            if cuda:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            else:
                torch.use_deterministic_algorithms(True)
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


@torch.no_grad()
def evaluate_nll(net: nn.Module, nll: Nll, data: WindowDataset, batch_size: int = EVAL_BATCH) -> float:
    """Mean NLL per target element of ``net`` (eval mode) over every sample of ``data``."""
    device = next(net.parameters()).device
    net.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for a in range(0, len(data), batch_size):
        idx = np.arange(a, min(a + batch_size, len(data)))
        y = _to_device(data.y(idx), device)
        mu, sigma = net(_to_device(data.x(idx), device))
        total += nll(mu, sigma, y, reduction="sum").double()
        count += y.numel()
    return float(total) / max(count, 1)


def fit_network(net: nn.Module, nll: Nll, train: WindowDataset, val: WindowDataset, settings: TrainSettings,
                progress: Progress | None = None) -> dict[str, Any]:
    """Train ``net`` in place on its device; best-validation weights restored. Returns a summary of plain values.

    Summary: ``epochs_run``, ``best_epoch`` (1-based; 0 if no epoch gave a finite
    validation NLL), ``best_val_nll``, ``train_seconds``, ``stopped_early``,
    ``samples_per_epoch``.  The training loss is ``nll`` weighted by
    ``down_weight`` on down-moves; the reported ``train_nll`` is unweighted.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"training needs samples in both ranges: {len(train)} training, {len(val)} validation")
    s = settings
    device = next(net.parameters()).device
    rng = np.random.default_rng(s.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    per_epoch = len(train) if s.max_steps_per_epoch == 0 else min(len(train), s.max_steps_per_epoch * s.batch_size)
    steps = math.ceil(per_epoch / s.batch_size)
    best_nll, best_epoch, best_state, bad, epoch = math.inf, 0, None, 0, 0
    stopped_early = False
    t0 = time.perf_counter()
    with _training_mode(device, s.seed):
        for epoch in range(1, s.epochs + 1):
            te = time.perf_counter()
            net.train()
            order = rng.permutation(len(train))[:per_epoch]
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = 0
            for step in range(steps):
                idx = order[step * s.batch_size:(step + 1) * s.batch_size]
                xb = train.x(idx)
                if s.augment:
                    xb = augment_batch(xb, rng, s.augment_scale, s.augment_noise)
                x, y = _to_device(xb, device), _to_device(train.y(idx), device)
                mu, sigma = net(x)
                loss = nll(mu, sigma, y, down_weights(y, s.down_weight))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
                opt.step()
                with torch.no_grad():
                    total += nll(mu, sigma, y, reduction="sum").double()
                count += y.numel()
                if progress is not None:
                    progress("step", {"step": step + 1, "steps": steps})
            train_nll = float(total) / max(count, 1)
            val_nll = evaluate_nll(net, nll, val)
            if progress is not None:
                progress("epoch", {"epoch": epoch, "epochs": s.epochs, "train_nll": train_nll, "val_nll": val_nll,
                                   "seconds": time.perf_counter() - te})
            if val_nll < best_nll:
                best_nll, best_epoch, bad = val_nll, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
                if bad >= s.patience:
                    stopped_early = epoch < s.epochs
                    break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"epochs_run": epoch, "best_epoch": best_epoch,
            "best_val_nll": best_nll if best_state is not None else math.nan,
            "train_seconds": time.perf_counter() - t0, "stopped_early": stopped_early,
            "samples_per_epoch": per_epoch}


# --- the shared forecaster shell -----------------------------------------------------------------------------

class NeuralForecaster:
    """A torch network behind the Forecaster protocol; subclasses set the class fields and :meth:`build_net`.

    The network exposes ``lookback``, ``horizon`` and ``head``.  ``predict_batch``
    is one eval-mode forward pass (CUDA-graph capturable) unless
    ``mc_dropout_samples`` > 0: then N passes with dropout on, seeded, giving
    mu = mean of the mus and sigma² = mean of the sigma²s + variance of the mus.
    """

    kind: ClassVar[str]
    section: ClassVar[str]              # the ModelSettings field with this model's settings
    settings_type: ClassVar[type]
    aligned: ClassVar[bool] = False

    def __init__(self, net: nn.Module, model_settings: Any, train_settings: TrainSettings, n_features: int,
                 symbols: tuple[str, ...]) -> None:
        self.net = net.eval()
        self.model_settings = model_settings
        self.train_settings = train_settings
        self.n_features = n_features
        self.symbols = tuple(symbols)
        self.lookback = cast(int, net.lookback)     # every network says how many rows it reads...
        self.horizon = cast(int, net.horizon)       # ...and how many steps it forecasts
        self.mc_samples = train_settings.mc_dropout_samples
        self.summary: dict[str, Any] = {}

    @classmethod
    def build_net(cls, s: Any, train: TrainSettings, n_features: int, n_symbols: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def _build(cls, s: Any, train: TrainSettings, n_features: int, symbols: tuple[str, ...]) -> NeuralForecaster:
        with torch.random.fork_rng(devices=[]):      # seeded initial weights, global RNG untouched
            torch.manual_seed(train.seed)
            net = cls.build_net(s, train, n_features, len(symbols))
        return cls(net, s, train, n_features, symbols)

    @classmethod
    def create(cls, settings: ModelSettings, n_features: int, symbols: tuple[str, ...]) -> NeuralForecaster:
        """An untrained forecaster shaped by the ``[model.<kind>]`` and ``[model.train]`` settings."""
        return cls._build(getattr(settings, cls.section), settings.train, n_features, tuple(symbols))

    def params(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "symbols": list(self.symbols),
                "model": asdict(self.model_settings), "train": asdict(self.train_settings)}

    def get_state(self) -> dict[str, Any]:
        return {"net": {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()},
                "summary": dict(self.summary)}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, Any]) -> NeuralForecaster:
        fc = cls._build(cls.settings_type(**params["model"]), TrainSettings(**params["train"]),
                        int(params["n_features"]), tuple(params["symbols"]))
        fc.net.load_state_dict(state["net"])
        fc.summary = dict(state.get("summary", {}))
        return fc

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> NeuralForecaster:
        self.net.to(device)
        return self

    def _check_dataset(self, ds: WindowDataset, name: str) -> None:
        want = (self.lookback, self.horizon, self.aligned, self.n_features)
        got = (ds.lookback, ds.horizon, ds.aligned, ds.n_features)
        if got != want:
            raise ValueError(f"{name} dataset has (lookback, horizon, aligned, features) {got}; "
                             f"the {self.kind} model needs {want}")
        if self.aligned and tuple(ds.symbols) != self.symbols:
            raise ValueError(f"{name} dataset symbols {list(ds.symbols)} differ from the model's {list(self.symbols)}")

    @property
    def _head(self) -> GaussianHead:
        """The network's distribution head (a GaussianHead or a StudentTHead)."""
        return cast(GaussianHead, self.net.head)

    def fit(self, train: WindowDataset, val: WindowDataset, progress: Progress | None = None) -> dict[str, Any]:
        """Train on ``train``, early-stop on ``val``; a fresh network first starts at sigma = the targets' sd."""
        self._check_dataset(train, "training")
        self._check_dataset(val, "validation")
        if not self.summary and len(train):
            y = train.y()
            self._head.calibrate(float(np.nanstd(y)) if np.isfinite(y).any() else 1.0)
        self.summary = fit_network(self.net, self._head.nll, train, val, self.train_settings, progress)
        return dict(self.summary)

    def _check_input(self, x: torch.Tensor) -> None:
        lead = 4 if self.aligned else 3
        tail = (len(self.symbols), self.lookback, self.n_features) if self.aligned else (self.lookback,
                                                                                          self.n_features)
        if x.ndim != lead or tuple(x.shape[1:]) != tail:
            raise ValueError(f"{self.kind} expects input (B, {', '.join(map(str, tail))}), got {tuple(x.shape)}")

    @torch.no_grad()
    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, F) or (B, A, L, F) normalised windows → mu, sigma (B, h) or (B, A, h), percent."""
        self._check_input(x)
        x = x.to(self.device)
        if self.mc_samples == 0:
            self.net.eval()
            return self.net(x)
        return self._mc_predict(x)

    def _mc_predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dev = x.device
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        mus, variances = [], []
        self.net.train()
        try:
            with torch.random.fork_rng(devices=devices):   # the same masks for the same input: reproducible
                torch.manual_seed(self.train_settings.seed)
                for _ in range(self.mc_samples):
                    mu, sigma = self.net(x)
                    mus.append(mu)
                    variances.append(sigma * sigma)
        finally:
            self.net.eval()
        m = torch.stack(mus)
        return m.mean(0), torch.sqrt(torch.stack(variances).mean(0) + m.var(0, unbiased=False))
