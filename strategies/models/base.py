"""The contract every learned forecaster keeps, so training, evaluation, checkpoints and serving treat them alike.

A forecaster maps normalised feature windows to a predictive distribution of the
next ``horizon`` log returns, in percent::

    predict_batch(x)  x: (B, L, F) float32 tensor   (multi-asset: (B, A, L, F))
                      → (mu, sigma), each (B, h)      (multi-asset: (B, A, h))

``sigma`` is the predictive standard deviation (a Student-t head reports its
standard deviation, not its scale).  ``predict_batch`` is pure inference: no
gradient, eval mode, and it must not move data between devices except ``x`` to
the forecaster's own device.

``fit(train, val, progress)`` learns from a :class:`~strategies.dataset.WindowDataset`
and uses ``val`` (a later, disjoint range) for early stopping and for any
choice it makes (K of the knn, fusion weights): nothing else.  It returns a
summary dict of plain numbers (epochs, best validation NLL, ...).

``get_state()`` returns only tensors and plain Python values (ints, floats,
strings, lists, dicts), so a checkpoint loads with ``torch.load(weights_only=True)``;
``from_state(params, state)`` rebuilds an equal forecaster from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from strategies.dataset import WindowDataset

# progress(event, info): "epoch" with {"epoch", "epochs", "train_nll", "val_nll", "seconds"}, "step" with
# {"step", "steps"}, "message" with {"text"}. The CLI draws rich progress bars from it; tests pass None.
Progress = Callable[[str, dict[str, Any]], None]


class Forecaster(Protocol):
    kind: str            # "cnn_gru", "lstm", "knn", "fusion", "multi_asset"
    lookback: int        # feature rows read per sample
    horizon: int
    aligned: bool        # True: inputs (B, A, L, F) with a fixed symbol order (multi-asset)

    def fit(self, train: WindowDataset, val: WindowDataset, progress: Progress | None = None) -> dict[str, Any]:
        ...

    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ...

    @property
    def device(self) -> torch.device:
        ...

    def to(self, device: torch.device | str) -> Forecaster:
        ...

    def get_state(self) -> dict[str, Any]:
        ...


def forecast_dataset(model: Forecaster, data: WindowDataset, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over every sample of ``data`` in batches: (mu, sigma) as float64 arrays, percent."""
    mus, sigmas = [], []
    for a in range(0, len(data), batch_size):
        idx = np.arange(a, min(a + batch_size, len(data)))
        x = torch.from_numpy(data.x(idx)).to(model.device)
        mu, sigma = model.predict_batch(x)
        mus.append(mu.detach().to("cpu", torch.float64).numpy())
        sigmas.append(sigma.detach().to("cpu", torch.float64).numpy())
    if not mus:
        shape = (0, len(data.symbols), data.horizon) if data.aligned else (0, data.horizon)
        return np.zeros(shape), np.zeros(shape)
    return np.concatenate(mus), np.concatenate(sigmas)
