"""``bot sweep`` at scale: Ray on this machine against a sequential loop, Ray's per-task overhead, and a
scheduling simulation of the same sweep on a cluster.

    python scripts/bench_sweep.py [--data ../shared/data] [--configs 64] [--seq-configs 64] [--workers N]
                                  [--out /tmp/bench-sweep] [--json sweep.json]

The sweep (``sweep.toml``'s): ``--configs`` points of the cost-aware decision step's grid (all 64 below, or a
seeded random sample of them) × BTC, ETH, XRP (one symbol set) × 2025 cut into 4 quarterly folds, Q1–Q3
validation and Q4 held out (only the chosen configuration runs there).  Each run is ``bot backtest``'s
engine on a quarter of 3 symbols.  Measured:

1. **Ray**: ``bot sweep`` (the driver, ``run_sweep``) on a local Ray with all CPUs, wall time including
   Ray's start-up.
2. **Sequential**: the same runs in a plain loop in one process (``--sequential``), into a fresh folder;
   ``--seq-configs`` < ``--configs`` runs a subset and extrapolates by the per-run mean (said so).
3. **Ray overhead**: 2,000 empty tasks (submit → result), per task, and Ray's start-up.
4. **Simulation**: the per-run seconds of the sequential loop replayed through a greedy list
   scheduler (each free CPU takes the next run, as Ray's queue does) for 2…512 CPUs, adding the measured
   per-task overhead (submit-and-wait) and a start-up per worker (Ray's, plus importing the engine and
   loading the CSV files in a fresh process); the held-out runs wait for the validation runs (the choice) as
   in the driver.

Real data (``../shared/data``) is required: without it the script says so and exits.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = {
    "forecast.skill.enabled": [False, True],
    "risk.gate.long_entry_margin": [0.0, 0.5, 1.0, 2.0],
    "risk.gate.short_entry_margin": [0.5, 1.5],
    "risk.gate.exit_margin": [0.0, 0.5],
    "risk.gate.extra_cost_bps": [0.0, 5.0],
}


def spec_text(data: Path, configs: int) -> str:
    """The spec: the whole 64-point grid, or a seeded random ``configs`` of its points."""
    lines = ["[sweep]", f'data = ["{data}"]', 'symbol_sets = [["BTC/USDT", "ETH/USDT", "XRP/USDT"]]']
    if configs < len(list(itertools.product(*GRID.values()))):
        lines += ['search = "random"', f"samples = {configs}", "seed = 7"]
    lines += ["", "[folds]", 'from = "2025-01-01"', 'to = "2026-01-01"', "count = 4", "test = 1", "", "[grid]"]
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in GRID.items()]
    return "\n".join(lines) + "\n"


def node_start_s(data: Path) -> float:
    """A fresh worker's own start: importing the engine and loading the three CSV files."""
    import subprocess

    code = ("import time; t = time.perf_counter(); import bot.runs.backtest; from bot.feeds.replay.csvdata import "
            f"load_ohlcv_csv; [load_ohlcv_csv('{data}/' + s + 'USDT-1h.csv.gz') for s in ('BTC', 'ETH', 'XRP')]; "
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def empty_task_overhead(n: int = 2000) -> dict[str, float]:
    import ray

    @ray.remote(num_cpus=1)
    def nothing(i: int) -> int:
        return i

    ray.get([nothing.remote(i) for i in range(50)])           # workers started
    t = time.perf_counter()
    ray.get([nothing.remote(i) for i in range(n)])
    batch = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(200):
        ray.get(nothing.remote(i))
    serial = (time.perf_counter() - t) / 200
    return {"per_task_batched_ms": batch * 1e3, "per_task_round_trip_ms": serial * 1e3}


def simulate(durations: list[float], held_out: list[float], cpus: int, overhead_s: float, start_s: float) -> float:
    """Wall seconds of the sweep on ``cpus`` CPUs: list scheduling in submission order, every worker starting
    after ``start_s`` (Ray's and the node's start-up), ``overhead_s`` per task."""
    free = [(start_s, w) for w in range(cpus)]   # every worker pays its node's start-up once
    heapq.heapify(free)
    end = 0.0
    for d in durations:
        t, w = heapq.heappop(free)
        t += overhead_s + d
        end = max(end, t)
        heapq.heappush(free, (t, w))
    # The held-out runs start once every validation run is in (the choice needs them all).
    free = [(end, w) for w in range(cpus)]
    heapq.heapify(free)
    for d in held_out:
        t, w = heapq.heappop(free)
        end = max(end, t + overhead_s + d)
        heapq.heappush(free, (t + overhead_s + d, w))
    return end


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--configs", type=int, default=64)
    ap.add_argument("--seq-configs", type=int, default=None, help="configurations of the sequential loop "
                    "(default: --configs); fewer are extrapolated by the per-run mean")
    ap.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-sweep"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "BTCUSDT-1h.csv.gz").exists():
        print(f"no real data in {args.data} (../shared/data): nothing to measure")
        return 0
    import os
    import shutil

    from bot.sweep.driver import run_sweep
    from bot.sweep.report import format_analysis, load_rows
    from bot.sweep.schedule import start_ray
    from bot.sweep.spec import parse_spec

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    cpus = args.workers or os.cpu_count() or 1
    result: dict[str, object] = {"cpus": cpus, "configs": args.configs}

    # 1. Ray, start-up included.
    spec = parse_spec(spec_text(args.data.resolve(), args.configs), "bench", args.out)
    t = time.perf_counter()
    start_ray(None, args.workers)
    ray_start = time.perf_counter() - t
    outcome = run_sweep(spec, args.out / "ray", use_ray=True)
    ray_wall = time.perf_counter() - t
    ray_runs = load_rows(args.out / "ray" / "sweep.sqlite")
    result.update(ray_start_s=ray_start, ray_wall_s=ray_wall, runs=len(ray_runs),
                  bar_events=sum(r["bars"] * 3 for r in ray_runs))
    print(f"Ray ({cpus} CPUs): {len(ray_runs)} runs in {ray_wall:.1f} s (Ray start-up {ray_start:.1f} s)", flush=True)
    for line in format_analysis(outcome.analysis, top=5):
        print("  " + line)

    # 3. Ray's own overhead per task.
    over = empty_task_overhead()
    result.update(over)
    print(f"Ray overhead: {over['per_task_batched_ms']:.2f} ms per empty task submitted in a batch, "
          f"{over['per_task_round_trip_ms']:.2f} ms per submit-and-wait round trip", flush=True)
    import ray

    ray.shutdown()

    # 2. Sequential loop (a subset extrapolated when asked).
    seq_n = args.seq_configs or args.configs
    seq_spec = parse_spec(spec_text(args.data.resolve(), seq_n), "bench", args.out) if seq_n != args.configs else spec
    t = time.perf_counter()
    run_sweep(seq_spec, args.out / "seq", use_ray=False)
    seq_wall = time.perf_counter() - t
    seq_runs = load_rows(args.out / "seq" / "sweep.sqlite")
    per_run = [r["seconds"] for r in seq_runs if not r["test"]]
    held = [r["seconds"] for r in seq_runs if r["test"]]
    full_seq = seq_wall if seq_n == args.configs else (
        seq_wall / len(seq_runs) * len(ray_runs))
    result.update(seq_configs=seq_n, seq_wall_s=seq_wall, seq_wall_full_s=full_seq,
                  seq_run_median_s=statistics.median(per_run), seq_run_mean_s=statistics.mean(per_run))
    note = "" if seq_n == args.configs else f" ({seq_n} configurations measured, {seq_wall:.1f} s, extrapolated)"
    print(f"sequential: {full_seq:.1f} s{note}; per run median {statistics.median(per_run):.2f} s, "
          f"mean {statistics.mean(per_run):.2f} s; Ray speed-up {full_seq / ray_wall:.2f}x on {cpus} CPUs", flush=True)

    # 4. The simulation, from the sequential (uncontended) per-run seconds.
    n_val = len([r for r in ray_runs if not r["test"]])
    runs = [per_run[i % len(per_run)] for i in range(n_val)]
    start = ray_start + node_start_s(args.data.resolve())
    overhead = over["per_task_round_trip_ms"] / 1e3
    sims = {n: simulate(runs, held or [statistics.median(per_run)], n, overhead, start)
            for n in (2, 8, 16, 32, 64, 128, 256, 512)}
    result["simulated_s"] = sims
    result["start_s"] = start
    total = sum(runs)
    print(f"simulated ({len(runs)} validation runs of {statistics.mean(runs):.2f} s mean, then "
          f"{len(held) or 1} held-out; {overhead * 1e3:.2f} ms overhead per task; {start:.1f} s start-up):")
    print("  CPUs | wall s | speed-up vs 1 CPU | efficiency")
    for n, s in sims.items():
        print(f"  {n:4d} | {s:7.1f} | {total / s:6.1f}x | {total / s / n:.0%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
