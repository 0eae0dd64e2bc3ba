"""The ``models`` table's rows: a run's model versions, as values and as statements (pure, plus one reader).

    version row (INSERT_MODEL) ─ training → accepted | rejected | failed      (bot/retrain/keeper.py, outside bars)
                                 accepted → serving → retired                (in the transaction of a bar)

The change of the serving version is written with the first bar the new version decides
(:func:`swap_statements` ride in :attr:`bot.store.rows.BarRecord.model_rows`), so a crash leaves the log
with exactly one serving version, the one the last committed bar used.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from bot.store.schema import INSERT_MODEL, MARK_SERVED, RETIRE_SERVING, START_SERVING

Statement = tuple[str, tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One row of ``models`` (see the DDL in :mod:`bot.store.schema` for each column)."""

    version: int
    kind: str
    status: str
    trigger: str
    requested_bar_ms: int | None = None
    due_bar_ms: int | None = None
    train_from_ms: int | None = None
    train_to_ms: int | None = None
    holdout_from_ms: int | None = None
    holdout_to_ms: int | None = None
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    settings: str = "{}"
    train_seconds: float | None = None
    device: str = ""
    scores: str = ""
    reason: str = ""
    first_bar_ms: int | None = None
    last_bar_ms: int | None = None
    created_ms: int = 0
    decided_ms: int | None = None


COLUMNS = tuple(f.name for f in fields(ModelVersion))


def insert_statement(run_id: str, m: ModelVersion) -> Statement:
    """The row of ``m`` (a version already logged stays as it is)."""
    return INSERT_MODEL, (run_id, *(getattr(m, c) for c in COLUMNS))


def swap_statements(run_id: str, bar_ms: int, tf_ms: int, version: int) -> tuple[Statement, ...]:
    """``version`` serves from ``bar_ms``: the one serving before is retired at the bar before."""
    return ((RETIRE_SERVING, (bar_ms - tf_ms, run_id, version)), (START_SERVING, (run_id, version)),
            served_statement(run_id, bar_ms, version))


def served_statement(run_id: str, bar_ms: int, version: int) -> Statement:
    return MARK_SERVED, (bar_ms, bar_ms, run_id, version)


def from_row(row: Any) -> ModelVersion:
    return ModelVersion(*row)


SELECT_MODELS = f"SELECT {', '.join(COLUMNS)} FROM models WHERE run_id = ? ORDER BY version"


def read_models(conn: sqlite3.Connection, run_id: str) -> list[ModelVersion]:
    """Every version of ``run_id``, oldest first; [] for a log older than schema version 4."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'models'").fetchone() is None:
        return []
    return [from_row(r) for r in conn.execute(SELECT_MODELS, (run_id,)).fetchall()]
