"""What a retrain is: the model kind, the bars it trains on, the bars it is judged on, and the settings.

    ... train_from ─────── training (rolling: window_bars; expanding: since the run's first bar) ──── holdout_from
        holdout_from ── held-out outcomes (holdout_bars, the most recent) ── holdout_to = requested bar + 1

The candidate never sees a held-out bar: its training samples' targets lie before ``holdout_from``
(:func:`strategies.workflow.fit_range`).  The gate scores the forecasts made at the bars
``[holdout_from − 1, requested]`` against the outcomes ``[holdout_from, requested]``.  Pure; the job
travels to the worker process as a JSON file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from strategies.settings import RetrainSettings


@dataclass(frozen=True, slots=True)
class RetrainJob:
    run_id: str
    version: int                 # the models.version the candidate gets
    kind: str                    # model to train ('cnn_gru', ...)
    trigger: str                 # 'schedule' or 'alarm'
    requested_bar_ms: int        # the bar after whose decision it started (its last held-out outcome)
    due_bar_ms: int              # the first bar the candidate may decide
    train_from_ms: int
    holdout_from_ms: int         # = end (exclusive) of the training range
    holdout_to_ms: int           # end (exclusive) of the held-out outcomes
    data_from_ms: int            # the first bar the worker loads (training range less the windows' history)
    db: str                      # the trade log the candles come from (read only)
    settings_json: str           # the whole config (Settings.to_json()) the model is trained with
    serving_checkpoint: str      # '' when the serving model is the baseline
    serving_kind: str
    checkpoint: str              # where the candidate's checkpoint goes
    result: str                  # where the worker writes its verdict (JSON)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RetrainJob:
        return cls(**json.loads(text))

    def summary(self) -> dict[str, Any]:
        """What the models table keeps of the job (its ``settings`` column)."""
        model = json.loads(self.settings_json).get("model", {})
        return {"kind": self.kind, "train": [self.train_from_ms, self.holdout_from_ms],
                "holdout": [self.holdout_from_ms, self.holdout_to_ms], "model": model}


def plan_ranges(r: RetrainSettings, bar_ms: int, tf_ms: int, first_bar_ms: int, history_bars: int
                ) -> tuple[int, int, int, int]:
    """``(data_from, train_from, holdout_from, holdout_to)`` of a retrain after bar ``bar_ms``.

    ``first_bar_ms``: the earliest bar the run knows (the expanding window's start); ``history_bars``: bars a
    window needs before its first forecast (market.window).
    """
    holdout_to = bar_ms + tf_ms
    holdout_from = holdout_to - r.holdout_bars * tf_ms
    train_from = holdout_from - r.window_bars * tf_ms
    if r.window == "expanding":
        train_from = min(train_from, first_bar_ms)
    return train_from - history_bars * tf_ms, train_from, holdout_from, holdout_to
