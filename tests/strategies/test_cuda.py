"""CPU and GPU serve the same forecasts: eager CUDA and the CUDA graph agree with the CPU within 1e-4.

These run only where torch sees a CUDA device (the team's lent GPU machines);
CI has none, and the same predictor code paths run on CPU in test_serving.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import SYMBOLS, tiny_market, train_and_save

from strategies.checkpoint import load_checkpoint
from strategies.predictor import TorchPredictor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here: GPU parity runs on a lent GPU machine")
TOL = 1e-4      # relative; float32 on both sides, TF32 off for serving


@pytest.mark.parametrize("kind", ["cnn_gru", "lstm", "knn", "multi_asset", "fusion"])
def test_cpu_eager_and_graphed_cuda_agree(tmp_path, kind):
    market = tiny_market()
    path, _, _ = train_and_save(tmp_path, market, kind)
    cpu = TorchPredictor(load_checkpoint(path, "cpu"), "cpu")
    eager = TorchPredictor(load_checkpoint(path, "cuda"), "cuda", cuda_graph=False)
    graph = TorchPredictor(load_checkpoint(path, "cuda"), "cuda", cuda_graph=True)
    rng = np.random.default_rng(0)
    for t in rng.integers(cpu.min_window, 899, size=20):
        w = np.stack([m.ohlcv[t + 1 - cpu.min_window:t + 1] for m in market])
        ref = cpu.predict(0, SYMBOLS, w)
        for other in (eager, graph):
            got = other.predict(0, SYMBOLS, w)
            np.testing.assert_allclose([f.mu for f in got], [f.mu for f in ref], rtol=TOL, atol=1e-7)
            np.testing.assert_allclose([f.sigma for f in got], [f.sigma for f in ref], rtol=TOL)
    assert graph.use_graph and graph._graphs, "the CUDA graph was not used"
