"""A sweep's runs: grid points × folds × symbol sets, each a backtest with a stable id.

The ids are hashes of what decides a run's result, so a rerun of the same spec finds its finished runs
(and a changed base config or value makes new ones instead of mixing results):

    config id   sha256(base config hash, the grid point's keys and values)[:10]
    run id      {config id}-{fold name}-{symbol set id}, the symbol set id "BTC+ETH+XRP" (bases joined)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sweep.spec import Fold, SweepSpec


@dataclass(frozen=True, slots=True)
class GridPoint:
    config_id: str
    values: tuple[tuple[str, Any], ...]     # (dotted key, value) in the spec's key order

    @property
    def label(self) -> str:
        return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.values)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One backtest of a sweep: what a worker needs, in plain values (it travels to Ray workers)."""

    run_id: str
    config_id: str
    values: tuple[tuple[str, Any], ...]
    fold: str
    test: bool
    start_ms: int
    end_ms: int
    symbols: tuple[str, ...]
    base_json: str                  # the base config (Settings.to_json())
    files: tuple[tuple[str, str], ...]   # (symbol, CSV file) of each symbol


def symbol_set_id(symbols: tuple[str, ...]) -> str:
    return "+".join(s.split("/")[0] for s in symbols)


def grid_points(spec: SweepSpec) -> list[GridPoint]:
    """Every grid point (search = "grid") or ``samples`` distinct ones drawn with ``seed`` ("random")."""
    keys = [k for k, _ in spec.grid]
    combos = list(itertools.product(*(v for _, v in spec.grid)))
    if spec.search == "random" and spec.samples < len(combos):
        combos = random.Random(spec.seed).sample(combos, spec.samples)
    base = spec.base.config_hash
    points = []
    for combo in combos:
        values = tuple(zip(keys, combo))
        digest = hashlib.sha256(json.dumps([base, values], sort_keys=True).encode()).hexdigest()[:10]
        points.append(GridPoint(digest, values))
    return points


def run_spec(spec: SweepSpec, point: GridPoint, fold: Fold, symbols: tuple[str, ...],
             files: Mapping[str, Path]) -> RunSpec:
    return RunSpec(f"{point.config_id}-{fold.name}-{symbol_set_id(symbols)}", point.config_id, point.values,
                   fold.name, fold.test, fold.start_ms, fold.end_ms, symbols, spec.base.to_json(),
                   tuple((s, str(files[s])) for s in symbols))


def validation_runs(spec: SweepSpec, points: list[GridPoint], files: Mapping[str, Path]) -> list[RunSpec]:
    """Every grid point on every validation fold and symbol set (fold-major: early folds finish first)."""
    return [run_spec(spec, p, f, s, files) for f in spec.validation_folds for p in points
            for s in spec.symbol_sets]


def test_runs(spec: SweepSpec, point: GridPoint, files: Mapping[str, Path]) -> list[RunSpec]:
    """The chosen grid point on the held-out folds, every symbol set."""
    return [run_spec(spec, point, f, s, files) for f in spec.test_folds for s in spec.symbol_sets]


__all__ = ["GridPoint", "RunSpec", "grid_points", "validation_runs", "test_runs", "symbol_set_id"]
