"""``bot sweep``: a grid of config values × walk-forward folds × symbol sets, each run a backtest.

    bot sweep SPEC.toml [--out DIR] [--address RAY_ADDRESS | --sequential] [--workers N] [--csv OUT.csv]

The spec (see :mod:`bot.sweep.spec`) names the config keys and values, the folds, the symbol sets and the
data.  Runs go to a local Ray (all CPUs, or ``--workers``) unless ``--address`` names a cluster;
``--sequential`` runs them in this process.  Every finished run is recorded in ``DIR/sweep.sqlite`` at
once, so a rerun of the same command skips them.  The end: the configuration chosen on the validation folds,
its deflated Sharpe ratio, the grid's probability of backtest overfitting and the chosen configuration's
held-out result, plus ``DIR/results.csv`` (one row per run); ``bot report --db DIR/sweep.sqlite`` prints
it again.  Exit codes as every command: 2 a bad spec or argument (naming the key), 3 unusable data or
results file, or runs that failed (rerun to retry them), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bot.cli.progress import Bars
from bot.errors import ConfigError, DataError


class _Bar(Bars):
    """A rich progress bar over runs (on a terminal only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("runs {task.fields[last]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, disable=not console.is_terminal)
        self.task: Any = None

    def __call__(self, done: int, total: int, run: Any, result: Any) -> None:
        if self.task is None or done == 1:
            self.task = self.progress.add_task("sweep", total=total, last="")
        last = f"{run.run_id} {'ok' if result.ok else 'FAILED'} {result.seconds:.1f} s"
        self.progress.update(self.task, completed=done, total=total, last=last)


def cmd_sweep(args: argparse.Namespace) -> int:
    from bot.cli.outputs import check_output_file
    from bot.sweep.driver import RESULTS, run_sweep
    from bot.sweep.report import format_analysis
    from bot.sweep.runs import grid_points, validation_runs
    from bot.sweep.spec import data_files, load_spec

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Hundreds of runs each warning of its own skill alarms would bury the sweep's result (Ray's workers do
        # not forward their logs anyway); -v shows them, and a kept trade log holds them (forecasts.alarm).
        logging.getLogger("strategies").setLevel(logging.ERROR)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.address and args.sequential:
        raise ConfigError("--address and --sequential exclude each other")
    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path(Path(args.spec).stem + "-sweep")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a folder")
    if args.csv:
        check_output_file(args.csv, "--csv")
    files = data_files(spec)   # before any run starts
    results = out / RESULTS
    if results.exists():
        from bot.sweep.store import is_sweep_file

        if not is_sweep_file(results):
            raise DataError(f"{results} exists and is not a sweep results file; choose another --out")
    points = grid_points(spec)
    runs = validation_runs(spec, points, files)
    where = ("sequentially in this process" if args.sequential else
             f"on the Ray cluster at {args.address}" if args.address else
             f"on a local Ray ({args.workers or 'all'} CPUs)")
    print(f"sweep {spec.source}: {len(points)} configurations x {len(spec.validation_folds)} validation folds x "
          f"{len(spec.symbol_sets)} symbol sets = {len(runs)} runs, then the chosen one on "
          f"{len(spec.test_folds)} held-out fold(s); {where}; results in {out}", flush=True)
    if not args.sequential:
        from bot.sweep.schedule import start_ray

        start_ray(args.address, args.workers)
    with _Bar() as bar:
        outcome = run_sweep(spec, out, use_ray=not args.sequential, progress=bar,
                            csv_path=Path(args.csv) if args.csv else None)
    print(f"{outcome.ran} runs done now, {outcome.skipped} found finished in {outcome.results}")
    for line in format_analysis(outcome.analysis):
        print(line)
    print(f"table: {outcome.csv} (one row per run); again: bot report --db {outcome.results}")
    if outcome.analysis.failed:
        raise DataError(f"{len(outcome.analysis.failed)} run(s) failed (their errors are in {outcome.csv}); "
                        "rerun the same command to retry them")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("sweep", help="backtest a grid of config values over walk-forward folds and symbol sets "
                       "(on Ray); choose on validation, report DSR, PBO and the held-out fold")
    s.add_argument("spec", type=Path, help="sweep spec, TOML (see README: Parameter sweeps)")
    s.add_argument("--out", default=None, help="folder for the results file, the CSV table and kept trade logs "
                   "(default: SPEC-sweep beside the current directory)")
    s.add_argument("--address", default=None, help="Ray cluster to run on (e.g. 10.0.0.5:6379 or auto); "
                   "default: a local Ray")
    s.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray (default: all)")
    s.add_argument("--sequential", action="store_true", help="no Ray: run each backtest in turn in this process")
    s.add_argument("--csv", default=None, help="where to write the results table (default: OUT/results.csv)")
    s.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    s.set_defaults(func=cmd_sweep)
