"""Bar-decision latency of the daemon while a retrain runs in the background, against none; time per retrain.

    python scripts/bench_retrain.py [--repeats 3] [--bars 400] [--interval 0.1] [--apply-after 150]

One served cnn_gru checkpoint (trained here once on the generated history), three symbols, the daemon against
the replay exchange on loopback (in this process), paced at ``--interval`` seconds a bar.  Two cases, run
interleaved ``--repeats`` times on fresh trade logs:

* ``no retrain``: ``[model.retrain] enabled = false``;
* ``retraining``: ``enabled = true``, ``interval_bars = 1``, ``apply_after_bars = --apply-after``: a new retrain
  starts at the first bar after the previous one was swapped in or turned down, so a worker process trains
  on most bars (the share is printed).  ``--apply-after`` × ``--interval`` must exceed a worker's wall time, or
  due bars wait for it (printed as "due bars held") and that wait, not the interference, is what is measured.
  Each retrain trains ``window_bars`` bars with the ``[model.train]`` below, on one torch thread.

Latency: each closed kline's arrival to its bar's commit (EngineStats.latencies), the first WARMUP_BARS
bars left out (they queued during the REST warm-up).  Medians over the repeats of p50 and p99; the retrain
time is the median of every retrain's ``models.train_seconds`` (fit only) and of the worker's wall time
(process start to verdict: imports, data, fit, scoring, checkpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.feeds.replay.server import ReplayExchange  # noqa: E402
from bot.feeds.replay.synthetic import generate_market  # noqa: E402
from bot.retrain.training import train_checkpoint  # noqa: E402
from bot.runs.daemon import run_daemon  # noqa: E402
from strategies.dataset import MarketSeries  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
START_MS = 1_704_067_200_000
H = 3_600_000
HISTORY = 2000
WARMUP_BARS = 20
MODEL = {"name": "cnn_gru", "device": "cpu",
         "cnn_gru": {"lookback": 64, "conv_channels": 16, "gru_hidden": 32, "gru_layers": 2},
         "train": {"epochs": 4, "max_steps_per_epoch": 50, "batch_size": 128, "patience": 2}}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


async def one_run(data: dict, ckpt: Path, db: Path, bars: int, interval: float, retrain: bool,
                  apply_after: int) -> dict:
    async with ReplayExchange(data, timeframe="1h", bar_interval_s=interval, start_index=HISTORY) as ex:
        settings = Settings().with_overrides(
            run={"db": str(db), "id": "bench", "log_level": "WARNING"},
            market={"symbols": SYMBOLS, "window": 128},
            feed={"ws_url": ex.ws_url, "rest_url": ex.rest_url, "assembly_timeout_s": 5.0},
            model={**MODEL, "checkpoint": str(ckpt),
                   "retrain": {"enabled": retrain, "interval_bars": 1, "on_alarm": False, "window_bars": 1500,
                               "holdout_bars": 168, "apply_after_bars": apply_after, "threads": 1,
                               "device": "cpu"}})
        result = await run_daemon(settings, asyncio.Event(), max_bars=bars)
    lat = result.stats.latencies[WARMUP_BARS * len(SYMBOLS):]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT train_seconds, (decided_ms - created_ms) / 1000.0 FROM models "
                            "WHERE version > 1 AND train_seconds IS NOT NULL").fetchall()
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "bars": result.stats.bars,
            "while_training": result.models.get("bars_while_training", 0), "held_s": result.models.get("held_s", 0),
            "train_s": [r[0] for r in rows], "worker_s": [r[1] for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bars", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between bars of the replay")
    ap.add_argument("--apply-after", type=int, default=150, help="[model.retrain] apply_after_bars")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import torch

    torch.set_num_threads(1)   # the served model's forward pass, as on the shared 2-core machine (README: 6 vs 37 ms)
    data = generate_market(SYMBOLS, HISTORY + args.bars + 10, START_MS, seed=3)
    series = [MarketSeries(s, data[s].open_ms, np.stack([np.asarray(c, dtype=np.float64) for c in (
        data[s].open, data[s].high, data[s].low, data[s].close, data[s].volume)], axis=1)) for s in SYMBOLS]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "cnn_gru.pt"
        t0 = time.perf_counter()
        train_checkpoint(Settings().with_overrides(market={"symbols": SYMBOLS, "window": 128}, model=MODEL),
                         "cnn_gru", series, START_MS, START_MS + HISTORY * H, ckpt, "cpu")
        print(f"served checkpoint trained in {time.perf_counter() - t0:.1f} s (in this process, one thread)")
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for i in range(args.repeats):
            for retrain in (False, True):
                r = asyncio.run(one_run(data, ckpt, Path(tmp) / f"r{i}{int(retrain)}.sqlite", args.bars,
                                        args.interval, retrain, args.apply_after))
                runs[retrain].append(r)
                print(f"  run {i + 1} {'retraining' if retrain else 'no retrain'}: p50 {r['p50']:.1f} ms, "
                      f"p99 {r['p99']:.1f} ms, {r['while_training']}/{r['bars']} bars during training, "
                      f"due bars held {r['held_s']:.1f} s, retrains {len(r['train_s'])}", flush=True)
    print(f"\n{len(SYMBOLS)} symbols, {args.bars} bars at {args.interval} s, medians of {args.repeats} runs")
    print("| case | latency p50 | latency p99 | bars decided while a worker trained | due bars held |")
    print("|---|---:|---:|---:|---:|")
    for retrain in (False, True):
        rs = runs[retrain]
        med = {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "while_training", "bars", "held_s")}
        print(f"| {'retraining' if retrain else 'no retrain'} | {med['p50']:.1f} ms | {med['p99']:.1f} ms | "
              f"{med['while_training']:.0f} of {med['bars']:.0f} | {med['held_s']:.1f} s |")
    train = [t for r in runs[True] for t in r["train_s"]]
    worker = [t for r in runs[True] for t in r["worker_s"]]
    if train:
        print(f"\nper retrain ({len(train)}): fit {statistics.median(train):.1f} s (median; "
              f"{min(train):.1f}-{max(train):.1f}), worker start to verdict {statistics.median(worker):.1f} s")


if __name__ == "__main__":
    main()
