"""Serving: a trained checkpoint behind the engine's :class:`~strategies.base.Predictor` interface.

Per closed bar the engine hands over every ready symbol's raw OHLCV window in
one array; this module turns it into one batched forward pass:

    windows (n, W, 5) → features of the last lookback+WARMUP bars (numpy, causal)
    → normalise with the checkpoint's scaler → (n, L, F) float32
    → forecaster.predict_batch on the model's device → μ, σ of step 1, percent → log-return units

On CUDA the forward pass is captured once per batch size as a CUDA graph and
replayed each bar (``torch.cuda.CUDAGraph``): one launch instead of dozens of
small kernels, which is what dominates at these batch sizes.  Inputs are copied
into the graph's static input tensor from pinned host memory.  On CPU it runs
eagerly.  The engine already calls ``predict`` in a worker thread, so neither
path blocks the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
import torch

from strategies.checkpoint import Checkpoint
from strategies.events import Forecast
from strategies.features import TARGET_SCALE, WARMUP, compute_features

log = logging.getLogger("strategies.predictor")


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from strategies.errors import ConfigError

        raise ConfigError("config key 'model.device': 'cuda' was asked for but torch sees no CUDA device; "
                          "allowed: auto, cpu, cuda")
    return torch.device(name)


class _GraphedForward:
    """``predict_batch`` captured as a CUDA graph for one fixed input shape."""

    def __init__(self, ckpt: Checkpoint, shape: tuple[int, ...]) -> None:
        model = ckpt.forecaster
        dev = model.device
        self.static_x = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.host_x = torch.zeros(shape, dtype=torch.float32).pin_memory()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):       # warm-up outside the capture, as the CUDA-graph docs require
            for _ in range(3):
                model.predict_batch(self.static_x)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_mu, self.static_sigma = model.predict_batch(self.static_x)
        self.host_mu = torch.zeros(self.static_mu.shape, dtype=torch.float32).pin_memory()
        self.host_sigma = torch.zeros(self.static_sigma.shape, dtype=torch.float32).pin_memory()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.host_x.numpy()[...] = x
        self.static_x.copy_(self.host_x, non_blocking=True)
        self.graph.replay()
        self.host_mu.copy_(self.static_mu, non_blocking=True)
        self.host_sigma.copy_(self.static_sigma, non_blocking=True)
        torch.cuda.current_stream(self.static_x.device).synchronize()
        return self.host_mu.numpy().astype(np.float64), self.host_sigma.numpy().astype(np.float64)


class TorchPredictor:
    """A checkpointed forecaster serving the engine: one batched forward pass per bar."""

    def __init__(self, ckpt: Checkpoint, device: torch.device | str = "cpu", cuda_graph: bool = True,
                 sigma_floor: float = 1e-5) -> None:
        self.ckpt = ckpt
        self.device = torch.device(device)
        ckpt.forecaster.to(self.device)
        self.name = ckpt.kind
        self.sigma_floor = sigma_floor
        self.use_graph = cuda_graph and self.device.type == "cuda" and \
            int(getattr(ckpt.forecaster, "mc_samples", 0)) == 0
        self._graphs: dict[tuple[int, ...], _GraphedForward] = {}
        self._lock = threading.Lock()   # one forward at a time: graphs own static buffers
        self.last_edge: np.ndarray | None = None
        if self.device.type == "cuda":
            # Full float32 on the GPU too, so CPU and GPU forecasts agree to ~1e-6 (TF32 would cost ~1e-3).
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            # Shapes are fixed per captured graph, so let cuDNN time its algorithms once per shape (during the
            # warm-up before capture): at 128 symbols the default heuristic's choice is 8x slower on an H100.
            torch.backends.cudnn.benchmark = True

    @property
    def min_window(self) -> int:
        return self.ckpt.min_window

    def features(self, windows: np.ndarray) -> np.ndarray:
        """(n, W, 5) raw bars → (n, L, F) normalised float32 model input (the last L feature rows)."""
        need = self.min_window
        if windows.shape[1] < need:
            raise ValueError(f"window of {windows.shape[1]} bars is shorter than the {need} the model needs")
        feats = compute_features(windows[:, -need:, :])[:, WARMUP:, :]
        return self.ckpt.scaler.transform(feats)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.use_graph:
            g = self._graphs.get(x.shape)
            if g is None:
                log.info("capturing a CUDA graph of the forward pass for input shape %s", x.shape)
                g = self._graphs[x.shape] = _GraphedForward(self.ckpt, x.shape)
            return g(x)
        mu, sigma = self.ckpt.forecaster.predict_batch(torch.from_numpy(x).to(self.device))
        return mu.double().cpu().numpy(), sigma.double().cpu().numpy()

    def moments(self, symbols: Sequence[str], windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """μ, σ of the next bar's log return (fractions, not percent) for each symbol, in ``symbols`` order."""
        x = self.features(windows)
        fc = self.ckpt.forecaster
        with self._lock:
            if fc.aligned:
                order = self._asset_order(symbols)
                mu, sigma = self._forward(x[order][None])     # (1, A, h)
                inv = np.argsort(order)
                mu, sigma = mu[0][inv], sigma[0][inv]
            else:
                mu, sigma = self._forward(x)
        mu1, sigma1 = mu[:, 0] / TARGET_SCALE, sigma[:, 0] / TARGET_SCALE
        # A model trained for several steps also gives the expected return over all of them: the net-edge
        # decision weighs a round trip's cost against that, not against one bar's mean.
        self.last_edge = mu.sum(axis=1) / TARGET_SCALE if mu.shape[1] > 1 else None
        return mu1, np.maximum(sigma1, self.sigma_floor)

    def _asset_order(self, symbols: Sequence[str]) -> np.ndarray:
        """Positions in ``symbols`` of the checkpoint's assets, in the checkpoint's order."""
        missing = [s for s in self.ckpt.symbols if s not in symbols]
        if missing or len(symbols) != len(self.ckpt.symbols):
            raise ValueError(f"the multi-asset model needs every one of {list(self.ckpt.symbols)} at each bar; "
                             f"missing {missing}")
        pos = {s: i for i, s in enumerate(symbols)}
        return np.array([pos[s] for s in self.ckpt.symbols], dtype=np.int64)

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        if windows.shape[0] != len(symbols):
            raise ValueError(f"{len(symbols)} symbols but {windows.shape[0]} windows")
        if windows.shape[0] == 0:
            return []
        mu, sigma = self.moments(symbols, windows)
        edge = self.last_edge
        if edge is None:
            return [Forecast(s, bar_ms, float(m), float(sd), self.name) for s, m, sd in zip(symbols, mu, sigma)]
        return [Forecast(s, bar_ms, float(m), float(sd), self.name, edge=float(e))
                for s, m, sd, e in zip(symbols, mu, sigma, edge)]
