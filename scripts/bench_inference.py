"""Per-bar inference latency of the served model: p50/p99 for 1, 16, 128 and 1,024 symbols.

    python scripts/bench_inference.py [--model cnn_gru] [--devices cpu cuda] [--bars 200] [--repeats 3]

For each device and batch size it times two paths, each call a whole bar:

* ``model``:   normalised feature windows already on the host → forward pass → μ, σ on the host
               (host → device → host included; the figure comparable to the issue's reference);
* ``predict``: what the engine calls: raw OHLCV windows → features → forward → Forecast objects.

On CUDA both run eagerly and with the forward pass captured as a CUDA graph.
The weights are random (latency does not depend on them).  Each configuration
runs ``--repeats`` times after a warm-up; the median over repeats of each
percentile is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from strategies.checkpoint import Checkpoint  # noqa: E402
from strategies.features import FEATURES, N_FEATURES, WARMUP, FeatureScaler  # noqa: E402
from strategies.models.registry import new_forecaster  # noqa: E402
from strategies.predictor import TorchPredictor  # noqa: E402
from strategies.settings import ModelSettings  # noqa: E402


def make_checkpoint(kind: str, symbols: tuple[str, ...], device: str) -> Checkpoint:
    torch.manual_seed(0)
    f = new_forecaster(kind, ModelSettings(), N_FEATURES, symbols).to(device)
    scaler = FeatureScaler(np.zeros(N_FEATURES), np.ones(N_FEATURES))
    return Checkpoint(kind, f, scaler, symbols, FEATURES, "1h", {}, "bench", "", {}, "{}")


def windows_for(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    r = rng.normal(0, 0.01, size=(n, length))
    close = 100 * np.exp(np.cumsum(r, axis=1))
    open_ = np.concatenate([np.full((n, 1), 100.0), close[:, :-1]], axis=1)
    high, low = np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998
    vol = rng.lognormal(3, 0.5, size=(n, length))
    return np.stack([open_, high, low, close, vol], axis=2)


def time_calls(fn, bars: int) -> list[float]:
    out = []
    for _ in range(bars):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn_gru", choices=("cnn_gru", "lstm"))
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 128, 1024])
    ap.add_argument("--bars", type=int, default=200, help="timed bars per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"model {args.model} (default [model.{args.model}] shape), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':<6} {'mode':<6} {'symbols':>7} {'path':<8} {'p50 ms':>9} {'p99 ms':>9}")
    for device in args.devices:
        modes = ["eager", "graph"] if device == "cuda" else ["eager"]
        for n in args.sizes:
            symbols = tuple(f"S{i}/USDT" for i in range(n))
            for mode in modes:
                ckpt = make_checkpoint(args.model, symbols, device)
                pred = TorchPredictor(ckpt, device, cuda_graph=(mode == "graph"))
                raw = windows_for(n, pred.min_window + 8, rng)
                x = pred.features(raw)
                bars = max(20, args.bars if n <= 128 or device == "cuda" else args.bars // 4)
                for path, fn in (("model", lambda: pred._forward(x)),
                                 ("predict", lambda: pred.predict(0, symbols, raw))):
                    p50s, p99s = [], []
                    for _ in range(args.repeats):
                        time_calls(fn, 10)                       # warm-up (and graph capture)
                        ms = time_calls(fn, bars)
                        p50s.append(float(np.percentile(ms, 50)))
                        p99s.append(float(np.percentile(ms, 99)))
                    print(f"{device:<6} {mode:<6} {n:>7} {path:<8} {statistics.median(p50s):>9.3f} "
                          f"{statistics.median(p99s):>9.3f}", flush=True)
    print(f"(window = lookback + {WARMUP} warm-up bars; medians of {args.repeats} repeats)")


if __name__ == "__main__":
    main()
