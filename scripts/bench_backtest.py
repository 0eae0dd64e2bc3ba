"""Backtest throughput and peak memory: 100 synthetic symbols × one year of hourly bars, on the CPU.

    python scripts/bench_backtest.py [--symbols 100] [--bars 8760] [--repeats 3] [--cnn-bars 500]
                                     [--models baseline cnn_gru]

A bar-event is one symbol's bar decided: bar-events/s = symbols × bars decided / seconds of the
decision loop (the engine's process_bar over every bar, the trade-log commits included; generating the
market, the warm-up and, for the baseline, the one-pass forecasts are set-up and excluded — the
precompute's seconds are printed apart).  Everything is the real path of ``bot backtest``: the
daemon's Engine, risk manager (VaR with deleveraging every bar), exact-Decimal paper executor and a
SQLite trade log on disk (``synchronous = FULL``), committed every 500 bars by the writer process
(``--writes direct``: on the engine's thread, as before it; ``both``: the two side by side, interleaved).

Peak memory is the process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``),
each case in its own fresh process, so it includes the interpreter, numpy, torch when loaded and the
in-memory market (decimal strings of every bar); the trade-log writer process's peak (VmHWM,
sampled every 0.2 s) is printed apart.

cnn_gru: a checkpoint of the default [model.cnn_gru] shape trained briefly (1 epoch of 20 steps) on
the first 1,000 bars; it is served per bar (one batched forward pass over all symbols), over
``--cnn-bars`` bars only, because a year takes long on a 2-core CPU.  Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WINDOW = 128          # the baseline's window (the engine benchmark's)
CNN_WINDOW = 153      # the default cnn_gru lookback 128 + the features' 25-bar warm-up
START_MS = 1_704_067_200_000


def symbols(n: int) -> list[str]:
    named = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    return named[:n] if n <= 3 else named + [f"S{i:03d}/USDT" for i in range(n - 3)]


def one_case(model: str, n_symbols: int, bars: int, tmp: str, write_behind: bool = True) -> dict[str, float]:
    """Run one backtest in this process and report its rates (called in a child process)."""
    from bot.config import Settings
    from bot.feeds.replay.synthetic import generate_market
    from bot.runs.backtest import HistoricalBars, PrecomputedBaseline, run_backtest
    from strategies.baseline import EwmaMomentumPredictor

    syms = symbols(n_symbols)
    history = 1000 if model == "cnn_gru" else 0
    window = CNN_WINDOW if model == "cnn_gru" else WINDOW
    data = generate_market(syms, history + window + bars, START_MS, seed=1)
    overrides: dict[str, object] = {"market": {"symbols": syms, "window": window}}
    if model == "cnn_gru":
        overrides["model"] = {"name": "cnn_gru", "checkpoint": train_checkpoint(data, syms, history, tmp),
                              "device": "cpu"}
    settings = Settings().with_overrides(run={"db": str(Path(tmp) / f"{model}.sqlite"), "id": "bench"},
                                         **overrides)
    precompute_s = 0.0
    if model == "baseline":   # the one-pass forecasts, timed apart (run_backtest would build the same)
        t0 = time.perf_counter()
        predictor = PrecomputedBaseline(EwmaMomentumPredictor(), HistoricalBars(data, syms, 3_600_000), WINDOW)
        precompute_s = time.perf_counter() - t0
    else:
        predictor = None
    start = START_MS + (history + window) * 3_600_000
    watch = ChildPeak()
    watch.start()
    r = asyncio.run(run_backtest(settings, data, start, predictor=predictor, write_behind=write_behind))
    watch.stop.set()
    watch.join()
    return {"bars": r.bars, "bar_events": r.bar_events, "seconds": r.seconds, "rate": r.bar_events_per_s,
            "precompute_s": precompute_s, "fills": r.stats.fills,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "writer_mib": watch.peak_kib / 1024}


class ChildPeak(threading.Thread):
    """The largest peak RSS (VmHWM) of this process's children — the trade-log writer — sampled every 0.2 s.

    Read from /proc, not getrusage(RUSAGE_CHILDREN): that one keeps the high-water mark of the forked
    image before its exec, i.e. the parent's size, not the writer's."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_kib = 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for children in Path("/proc/self/task").glob("*/children"):
                for pid in children.read_text().split():
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:   # exited meanwhile
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))


def train_checkpoint(data: dict, syms: list[str], history: int, tmp: str) -> str:
    """A default-shape cnn_gru trained for one short epoch on the first ``history`` bars."""
    from bot.config import Settings
    from bot.runs.backtest import series_floats
    from strategies.checkpoint import save_checkpoint
    from strategies.dataset import FeatureStore, MarketSeries
    from strategies.workflow import data_range, fit_range

    model = Settings().with_overrides(model={"name": "cnn_gru", "train": {"epochs": 1, "max_steps_per_epoch": 20}}
                                      ).model
    series = [MarketSeries(s, data[s].open_ms[:history], series_floats(data[s])[:history], 3_600_000)
              for s in syms[:10]]
    store = FeatureStore(series)
    end = int(data[syms[0]].open_ms[history])
    fitted = fit_range(store, "cnn_gru", model, store.first_ms(), end)
    path = Path(tmp) / "cnn_gru.pt"
    save_checkpoint(path, fitted.forecaster, scaler=fitted.scaler, symbols=tuple(syms), timeframe="1h",
                    data_range=data_range(series, store.first_ms(), end), summary={}, settings_json="{}")
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--cnn-bars", type=int, default=500, help="bars of the cnn_gru case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", choices=("baseline", "cnn_gru"), default=["baseline", "cnn_gru"])
    ap.add_argument("--writes", choices=("behind", "direct", "both"), default="behind",
                    help="trade-log commits from the writer process (the default, as bot backtest) or on the "
                         "engine's thread, or both side by side")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)   # internal: run one case, print JSON
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.case:
        print(json.dumps(one_case(args.case, args.symbols, args.bars, args.tmp, args.writes != "direct")))
        return
    print(f"backtest benchmark: {args.symbols} synthetic symbols, window {WINDOW} (cnn_gru {CNN_WINDOW}), CPU, "
          f"median of {args.repeats}")
    print(f"{'model':<9} {'writes':<7} {'bars':>6} {'bar-events':>10} {'loop s':>8} {'bar-events/s':>13} "
          f"{'precompute s':>13} {'peak RSS MiB':>13} {'writer MiB':>11}")
    writes = ["behind", "direct"] if args.writes == "both" else [args.writes]
    cases = [(m, args.bars if m == "baseline" else args.cnn_bars) for m in args.models]
    for model, bars in cases:
        runs: dict[str, list[dict[str, float]]] = {w: [] for w in writes}
        for _ in range(args.repeats):
            for w in writes:   # interleaved, so that a noisy spell hits both alike
                with tempfile.TemporaryDirectory() as tmp:
                    out = subprocess.run([sys.executable, __file__, "--case", model, "--symbols", str(args.symbols),
                                          "--bars", str(bars), "--tmp", tmp, "--writes", w],
                                         capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{model} case failed:\n{out.stderr}")
                runs[w].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for w in writes:
            med = {k: statistics.median(r[k] for r in runs[w]) for k in runs[w][0]}
            print(f"{model:<9} {w:<7} {int(med['bars']):>6} {int(med['bar_events']):>10} {med['seconds']:>8.1f} "
                  f"{med['rate']:>13,.0f} {med['precompute_s']:>13.2f} {med['maxrss_mib']:>13.0f} "
                  f"{med['writer_mib']:>11.0f}", flush=True)


if __name__ == "__main__":
    main()
