"""Throughput of ``bot backtest`` (in process, full logging): bar-events/s at 8 real and 10/100/300 generated symbols.

    python scripts/bench_throughput.py [--cases real8 gen10 gen100 gen300] [--bars 2000] [--repeats 3]
                                       [--before SRC_DIR]

A bar-event is one symbol's bar decided; bar-events/s = bar-events / seconds of the decision loop, as
``bot backtest`` prints it (the engine's ``process_bar`` over every bar and the trade-log commits through
the writer process; reading or generating the data, the warm-up and the baseline's one-pass forecasts are
set-up and excluded).  Everything is the default config: the baseline predictor (μ = 0.5 × 24-bar mean log
return, EWMA σ), fee 10 bps, every table logged.

* ``real8``: the 8 Binance files of ``../shared/data`` (or ``--data``), bars of 2025 (skipped with a message
  when the data is absent).
* ``genN``: N generated symbols (``bot.feeds.replay.synthetic.generate_market``, seed 1) × ``--bars`` bars.

Each run is a fresh process.  ``--before SRC_DIR`` also runs every case on another source tree (e.g. the
branch point, unpacked with ``git archive BASE | tar -x -C SRC_DIR``), interleaved run by run with this tree,
so that both sides see the same machine load; the table then shows both and their ratio.  Medians of
``--repeats`` runs; µs per bar-event shows whether the cost per bar-event stays flat across symbol counts.
On a machine shared with other work the wall-clock rate depends on the load; the CPU time per bar-event of
the engine's process over the decision loop (``time.process_time``, from the first decided bar) and of the
writer process (its whole life, ``RUSAGE_CHILDREN``) say how much work each bar-event costs, whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
START_MS = 1_704_067_200_000
WINDOW = 128
Y2025, Y2026 = 1_735_689_600_000, 1_767_225_600_000


def run_case(case: str, bars: int, data_dir: str, tmp: str) -> dict[str, float]:
    """One backtest in this process (a child): its bar-events and loop seconds."""
    import asyncio
    import logging

    import bot
    from bot.config import Settings

    if (Path(bot.__file__ or "").parent / "runs").is_dir():
        from bot.runs.backtest import run_backtest
    else:   # a tree from before bot/ was grouped into packages (issue 16), such as the base 3384fe4
        from bot.backtest import run_backtest  # type: ignore[import-not-found, no-redef]

    logging.basicConfig(level=logging.ERROR)
    if case == "real8":
        from bot.feeds.replay.csvdata import load_ohlcv_csv

        files = sorted(Path(data_dir).glob("*USDT-1h.csv.gz"))
        data = {f"{p.name.split('USDT')[0]}/USDT": load_ohlcv_csv(p, 3_600_000) for p in files}
        start, end = Y2025, Y2026
    else:
        from bot.feeds.replay.synthetic import generate_market

        n = int(case[3:])
        syms = [f"S{i:03d}/USDT" for i in range(n)]
        data = generate_market(syms, WINDOW + bars, START_MS, seed=1)
        start, end = START_MS + WINDOW * 3_600_000, None
    settings = Settings().with_overrides(run={"db": str(Path(tmp) / "bt.sqlite"), "id": "bench"},
                                         market={"symbols": list(data), "window": WINDOW})
    first_bar_cpu: list[float] = []

    async def at_bar(k: int, t_ms: int) -> None:   # the loop's CPU time counts from the first decided bar
        if not first_bar_cpu:
            first_bar_cpu.append(time.process_time())

    r = asyncio.run(run_backtest(settings, data, start, end, before_bar=at_bar))
    engine_cpu = time.process_time() - first_bar_cpu[0]
    writer = resource.getrusage(resource.RUSAGE_CHILDREN)   # the writer process, its whole life
    return {"bar_events": r.bar_events, "seconds": r.seconds, "rate": r.bar_events_per_s,
            "engine_cpu_us": 1e6 * engine_cpu / r.bar_events,
            "writer_cpu_us": 1e6 * (writer.ru_utime + writer.ru_stime) / r.bar_events,
            "fills": r.stats.fills, "src": str(Path(sys.modules["bot"].__file__ or "").parents[1])}


def spawn(src: Path, case: str, bars: int, data_dir: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(src))
        out = subprocess.run([sys.executable, __file__, "--child", case, "--bars", str(bars), "--data", data_dir,
                              "--tmp", tmp], env=env, cwd=src, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{case} on {src} failed:\n{out.stderr[-3000:]}")
    r: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(str(r["src"])).resolve() != src.resolve():
        raise SystemExit(f"{case}: imported bot from {r['src']}, not {src}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["real8", "gen10", "gen100", "gen300"])
    ap.add_argument("--bars", type=int, default=2000, help="decided bars of the generated cases")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=str(HERE.parent / "shared" / "data"))
    ap.add_argument("--before", default=None, help="another source tree to run side by side (the baseline)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.bars, args.data, args.tmp)))
        return
    cases = list(args.cases)
    if "real8" in cases and len(list(Path(args.data).glob("*USDT-1h.csv.gz"))) < 8:
        print(f"real8 skipped: the 8 Binance files are not in {args.data}")
        cases.remove("real8")
    trees = {"after": HERE} | ({"before": Path(args.before)} if args.before else {})
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    events: dict[str, float] = {}
    for rep in range(args.repeats):
        for case in cases:
            for side, src in trees.items():
                r = spawn(src, case, args.bars, args.data)
                runs.setdefault((side, case), []).append(r)
                events[case] = r["bar_events"]
                print(f"  run {rep + 1} {case:>6} {side:>6}: {r['rate']:>9,.0f} bar-events/s "
                      f"({r['bar_events']:,} in {r['seconds']:.2f} s, {r['fills']} fills); CPU per bar-event: "
                      f"engine {r['engine_cpu_us']:.1f} µs, writer {r['writer_cpu_us']:.1f} µs", flush=True)
    print(f"\nmedians of {args.repeats}: bar-events/s (wall µs per bar-event); engine CPU µs per bar-event "
          "(+ the writer process's)")
    head = "| case | bar-events |" + "".join(f" {side}: rate | {side}: CPU µs |" for side in trees)
    print(head + (" after / before: rate | CPU |" if len(trees) == 2 else ""))
    print("|---|---:|" + "---:|---:|" * len(trees) + ("---:|---:|" if len(trees) == 2 else ""))
    for case in cases:
        med = {side: {k: statistics.median(r[k] for r in runs[(side, case)])
                      for k in ("rate", "engine_cpu_us", "writer_cpu_us")} for side in trees}
        row = f"| {case} | {events[case]:,.0f} |" + "".join(
            f" {m['rate']:,.0f} ({1e6 / m['rate']:.1f}) | {m['engine_cpu_us']:.1f} (+{m['writer_cpu_us']:.1f}) |"
            for m in med.values())
        if len(trees) == 2:
            a, b = med["after"], med["before"]
            row += f" {a['rate'] / b['rate']:.2f}× | {b['engine_cpu_us'] / a['engine_cpu_us']:.2f}× less |"
        print(row)


if __name__ == "__main__":
    main()
