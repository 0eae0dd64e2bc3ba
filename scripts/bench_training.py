"""Training time to early stop: 3 years × 3 symbols of hourly bars, per device.

    python scripts/bench_training.py [--model cnn_gru] [--devices cpu cuda] [--data ../shared/data]

Reads BTC/USDT, ETH/USDT and XRP/USDT from ``--data`` (the real Binance klines
of ``shared/data``) over 2023-01-01 … 2026-01-01; without them it generates a
synthetic market of the same size and says so.  Trains with the embedded
``[model]`` defaults (or ``--config``) and prints wall time, epochs, best
validation NLL and samples per second for each device.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bot.config import load_settings  # noqa: E402
from strategies.dataset import FeatureStore, MarketSeries  # noqa: E402
from strategies.workflow import fit_range, model_horizon  # noqa: E402

START_MS, END_MS = 1_672_531_200_000, 1_767_225_600_000      # 2023-01-01, 2026-01-01 UTC
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")


def load(data: Path) -> tuple[list[MarketSeries], str]:
    import pandas as pd

    files = [data / (s.replace("/", "") + "-1h.csv.gz") for s in SYMBOLS]
    if all(f.exists() for f in files):
        out = []
        for sym, f in zip(SYMBOLS, files):
            df = pd.read_csv(f)
            df = df[(df.open_time >= START_MS) & (df.open_time < END_MS)]
            out.append(MarketSeries(sym, df.open_time.to_numpy(np.int64),
                                    df[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)))
        return out, f"real Binance klines from {data}"
    n = (END_MS - START_MS) // 3_600_000
    rng = np.random.default_rng(0)
    out = []
    for sym in SYMBOLS:
        close = 100 * np.exp(np.cumsum(rng.standard_t(4, n) * 0.006))
        open_ = np.concatenate([[100.0], close[:-1]])
        ohlcv = np.stack([open_, np.maximum(open_, close) * 1.003, np.minimum(open_, close) * 0.997, close,
                          rng.lognormal(3, 0.5, n)], axis=1)
        out.append(MarketSeries(sym, START_MS + 3_600_000 * np.arange(n, dtype=np.int64), ohlcv))
    return out, f"synthetic data ({data} has no BTC/ETH/XRP files)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn_gru", choices=("cnn_gru", "lstm", "multi_asset", "knn", "fusion"))
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args()
    settings = load_settings(args.config).model
    series, source = load(args.data)
    store = FeatureStore(series, horizon=model_horizon(args.model, settings))
    t = settings.train
    print(f"{args.model}: {source}; {sum(len(s) for s in series)} bars; epochs ≤ {t.epochs}, patience {t.patience}, "
          f"batch {t.batch_size}, ≤ {t.max_steps_per_epoch} steps/epoch; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for device in args.devices:
        t0 = time.perf_counter()
        fitted = fit_range(store, args.model, settings, START_MS, END_MS, device)
        seconds = time.perf_counter() - t0
        s = fitted.summary
        epochs = s.get("epochs_run", 0)
        samples = epochs * (t.max_steps_per_epoch or 0) * t.batch_size
        rate = f"{samples / seconds:,.0f} samples/s" if samples else ""
        print(f"{device:<5} {seconds:8.1f} s  epochs {epochs}  best epoch {s.get('best_epoch')}  "
              f"best val NLL {s.get('best_val_nll', float('nan')):.4f}  stopped early {s.get('stopped_early')}  "
              f"{rate}", flush=True)


if __name__ == "__main__":
    main()
