"""``bot sweep``'s orchestration: validation runs, the choice, the held-out runs, the results.

    spec ──► grid points × validation folds × symbol sets ──► (skip the finished) ──► Ray / sequential
                                                                                        │ one row per run
                                                                                        ▼
    results.csv ◄── report ◄── choose on validation only, DSR, PBO ◄──────────────── sweep.sqlite
                                  │ the chosen configuration only
                                  ▼
                          held-out folds × symbol sets (run once; a rerun reads them back)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.sweep import schedule
from bot.sweep.report import Analysis, analyse, load_rows, write_csv
from bot.sweep.runs import GridPoint, RunSpec, grid_points, test_runs, validation_runs
from bot.sweep.spec import SweepSpec, data_files
from bot.sweep.store import SweepStore
from bot.sweep.worker import RunResult

log = logging.getLogger("bot.sweep")

RESULTS = "sweep.sqlite"
CSV = "results.csv"

Progress = Callable[[int, int, RunSpec, RunResult], None]   # (done, total, run, result)


@dataclass
class SweepOutcome:
    analysis: Analysis
    csv: Path
    results: Path
    ran: int            # runs executed by this invocation
    skipped: int        # runs found finished


def execute_runs(runs: Sequence[RunSpec], store: SweepStore, out_dir: Path, keep: bool, use_ray: bool,
                 progress: Progress | None = None) -> int:
    """Run those of ``runs`` not finished in ``store``, recording each result as it comes; the count run."""
    finished = store.finished()
    todo = [r for r in runs if r.run_id not in finished]
    count = 0

    def done(run: RunSpec, result: RunResult) -> None:
        nonlocal count
        store.record(run, result)
        count += 1
        if not result.ok:
            log.warning("run %s failed: %s", run.run_id, result.error)
        if progress is not None:
            progress(count, len(todo), run, result)

    if todo:
        (schedule.run_ray if use_ray else schedule.run_sequential)(todo, str(out_dir), keep, done)
    return count


def run_sweep(spec: SweepSpec, out_dir: Path, *, use_ray: bool = True, progress: Progress | None = None,
              csv_path: Path | None = None) -> SweepOutcome:
    """The whole sweep: validation runs, the choice, the chosen configuration's held-out runs, the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points = grid_points(spec)
    by_id: dict[str, GridPoint] = {p.config_id: p for p in points}
    files = data_files(spec)
    val = validation_runs(spec, points, files)
    with SweepStore(out_dir / RESULTS) as store:
        ran = execute_runs(val, store, out_dir, spec.keep_trade_logs, use_ray, progress)
        skipped = len(val) - ran
        ids = {p.config_id for p in points}
        rows = [r for r in load_rows(out_dir / RESULTS) if r["config_id"] in ids]
        a = analyse(rows)
        val_ids = {r.run_id for r in val}
        # A choice among a grid with holes would not be the grid's: the held-out folds wait for a full one.
        if a.chosen is not None and not any(r["run_id"] in val_ids and not r["ok"] for r in rows):
            held = test_runs(spec, by_id[a.chosen.config_id], files)
            n = execute_runs(held, store, out_dir, True, use_ray, progress)
            ran += n
            skipped += len(held) - n
        rows = [r for r in load_rows(out_dir / RESULTS) if r["config_id"] in ids]
    a = analyse(rows)
    # The warning about a reused held-out fold counts every configuration the file ever tested there.
    a.held_out_configs = len({r["config_id"] for r in load_rows(out_dir / RESULTS) if r["test"]})
    csv = write_csv(rows, csv_path or out_dir / CSV)
    return SweepOutcome(a, csv, out_dir / RESULTS, ran, skipped)


__all__ = ["run_sweep", "execute_runs", "SweepOutcome", "RESULTS", "CSV"]
