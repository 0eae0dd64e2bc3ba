"""Where a sweep's runs execute: one after another in this process, or as Ray tasks.

Both call :func:`bot.sweep.worker.execute` on each run and hand every result to ``done`` as it
arrives (the driver records it at once, so an interrupted sweep keeps every finished run).  Ray: a local
instance with ``workers`` CPUs (default: all) unless ``address`` names a cluster (``ray start --head`` on
one machine, ``ray start --address HEAD:6379`` on the others; every node needs this package installed and
the data at the same path).  One task per run, one CPU each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bot.errors import ConfigError
from bot.sweep.runs import RunSpec
from bot.sweep.worker import RunResult, execute

log = logging.getLogger("bot.sweep")

Done = Callable[[RunSpec, RunResult], None]


def run_sequential(runs: Sequence[RunSpec], out_dir: str, keep: bool, done: Done) -> None:
    """Each run in turn, in this process."""
    for run in runs:
        done(run, execute(run, out_dir, keep or run.test))


def start_ray(address: str | None, workers: int | None) -> None:
    """Connect to the cluster at ``address``, or start a local Ray with ``workers`` CPUs."""
    try:
        import ray
    except ImportError as exc:   # a main dependency: only a broken install gets here
        raise ConfigError(f"Ray is not installed ({exc}); pip install -e . or pass --sequential") from exc
    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot start Ray{f' at --address {address}' if address else ''}: {exc}") from exc


def run_ray(runs: Sequence[RunSpec], out_dir: str, keep: bool, done: Done) -> None:
    """Every run as a Ray task (one CPU each), results handed to ``done`` in the order they finish."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=0)(execute)
    pending = {task.remote(run, out_dir, keep or run.test): run for run in runs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                run = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:   # the worker died or raised past execute's net
                    result = RunResult(run.run_id, False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                done(run, result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


__all__ = ["run_sequential", "run_ray", "start_ray", "Done"]
