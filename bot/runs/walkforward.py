"""Walk-forward backtests: the model is refitted every N bars on the history before the bar, never after.

    bar k of the backtest:  k % N == 0 → fit on [start, t_k) → swap into the engine's predictor → decide t_k

``start`` is the first bar of the data (``expanding``) or ``train_bars`` bars before ``t_k``
(``rolling``).  The fit is :func:`strategies.workflow.fit_range`, the step ``bot train`` runs: its
samples' decision bars *and targets* lie inside the range, so the model fitted for bar ``t_k`` has
learned nothing from ``t_k`` or later.  The engine, risk, executor and store are untouched; the only
moving part is :class:`WalkForwardPredictor`, a predictor whose model is replaced between bars, and which
refuses to forecast a bar its model's training range reaches (a second, independent guard).

Each refit is logged (bar, ranges, validation NLL, seconds), returned in the backtest's result and written to
the trade log's ``models`` table (schema 4): version ``k // N + 1``, trigger ``walk-forward``, its ranges,
training time and device, serving from the bar it was fitted for (its row and the swap are committed with
that bar, as the daemon's retrains are); ``forecasts.model_version`` names the refit behind each forecast.

Training on the CPU is deterministic (fixed seed, deterministic kernels), so a rerun — or a resumed run,
which refits at the last scheduled bar before it — trades with the same models.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.config import Settings
from bot.errors import ConfigError
from bot.feeds.replay.csvdata import Series
from bot.timefmt import utc_minute, utc_span
from strategies.events import Forecast

log = logging.getLogger("bot.runs.walkforward")


@dataclass(frozen=True, slots=True)
class WalkForwardPlan:
    model: str                 # a trainable model name (cnn_gru, lstm, ...)
    retrain_every: int         # decided bars between refits
    train_window: str          # "expanding" or "rolling"
    train_bars: int | None     # rolling: bars of history each fit sees


@dataclass(frozen=True, slots=True)
class Retrain:
    """One refit: the bar it serves from, the range given to fit_range, and what the fit reported."""

    at_bar_ms: int
    start_ms: int
    end_ms: int                      # exclusive: the fit saw bars < end_ms == at_bar_ms
    train_range: tuple[int, int]     # first and last bar the weights learned from
    val_range: tuple[int, int]       # first and last bar of the validation range
    best_val_nll: float | None
    seconds: float


class WalkForwardPredictor:
    """The engine's predictor for a walk-forward run: the latest fitted model, swapped in between bars."""

    def __init__(self, model: str, sigma_floor: float) -> None:
        self.name = model
        self.sigma_floor = sigma_floor
        self.current: Any = None          # a TorchPredictor over the latest fit
        self.seen_until_ms: int | None = None   # the end (exclusive) of the latest fit's range
        self._min_window = 1

    @property
    def min_window(self) -> int:
        return self._min_window

    def swap(self, predictor: Any, seen_until_ms: int) -> None:
        self.current, self.seen_until_ms = predictor, seen_until_ms
        self._min_window = predictor.min_window

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        if self.current is None or self.seen_until_ms is None:
            raise RuntimeError(f"bar {bar_ms}: no model fitted yet")
        if bar_ms < self.seen_until_ms:
            raise RuntimeError(f"bar {bar_ms}: the model was fitted on bars up to {self.seen_until_ms}, "
                               "which include this bar or later ones")
        return list(self.current.predict(bar_ms, symbols, windows))


class RefitLog:
    """The models-table side of a walk-forward (``Engine.models``): each refit a version, serving from its bar."""

    run_id: str
    tf_ms: int
    _version: int | None = None
    _new: Any = None

    def _refitted(self, version: int, kind: str, start_ms: int, end_ms: int, seconds: float, device: Any,
                  best_val_nll: float | None) -> None:
        from bot.store.models import ModelVersion

        self._version = version
        self._new = ModelVersion(version, kind, "accepted", "walk-forward", requested_bar_ms=end_ms,
                                 due_bar_ms=end_ms, train_from_ms=start_ms, train_to_ms=end_ms,
                                 settings=json.dumps({"kind": kind, "train": [start_ms, end_ms]}),
                                 train_seconds=round(seconds, 3), device=str(device),
                                 scores=json.dumps({"best_val_nll": best_val_nll}),
                                 reason="walk-forward refit (served on schedule, no gate)",
                                 created_ms=int(time.time() * 1000))

    async def bar_begins(self, bar_ms: int) -> None:   # the refit happens in before_bar(k, t), the backtest's hook
        return None

    def bar_decided(self, bar_ms: int, forecasts: Sequence[Forecast]) -> tuple[int | None, tuple[Any, ...]]:
        from bot.store.models import insert_statement, served_statement, swap_statements

        if self._version is None:
            return None, ()
        if self._new is not None:
            rows = (insert_statement(self.run_id, self._new),
                    *swap_statements(self.run_id, bar_ms, self.tf_ms, self._version))
            self._new = None
            return self._version, rows
        return self._version, (served_statement(self.run_id, bar_ms, self._version),)

    def bar_committed(self, bar_ms: int) -> None:
        return None


class WalkForward(RefitLog):
    """Refits on schedule; ``before_bar`` is what :func:`bot.runs.backtest.run_backtest` awaits before each bar."""

    def __init__(self, settings: Settings, plan: WalkForwardPlan, data: Mapping[str, Series]) -> None:
        from bot.runs.backtest import series_floats
        from strategies.dataset import FeatureStore, MarketSeries
        from strategies.features import WARMUP
        from strategies.models.registry import new_forecaster
        from strategies.predictor import resolve_device
        from strategies.workflow import model_horizon

        if plan.retrain_every < 1:
            raise ConfigError(f"--retrain-every must be at least 1, got {plan.retrain_every}")
        if plan.train_window not in ("expanding", "rolling"):
            raise ConfigError(f"--train-window must be expanding or rolling, got {plan.train_window!r}")
        if plan.train_window == "rolling" and (plan.train_bars is None or plan.train_bars < 2):
            raise ConfigError("--train-window rolling needs --train-bars (at least 2)")
        self.settings, self.plan = settings, plan
        m = settings.model
        lookback = new_forecaster(plan.model, m, 1, settings.market.symbols).lookback
        if settings.market.window < lookback + WARMUP:
            raise ConfigError(f"market.window is {settings.market.window}; model {plan.model} needs at least "
                              f"{lookback + WARMUP} (its lookback {lookback} + the features' warm-up {WARMUP})")
        tf = settings.market.timeframe_ms
        series = [MarketSeries(s, data[s].open_ms, series_floats(data[s]), tf) for s in settings.market.symbols]
        self.store = FeatureStore(series, horizon=model_horizon(plan.model, m))
        self.times = np.unique(self.store.open_ms)
        self.device = resolve_device(m.device)
        self.predictor = WalkForwardPredictor(plan.model, m.baseline.sigma_floor)
        self.retrains: list[Retrain] = []
        self._fitted_k: int | None = None
        self.run_id, self.tf_ms = settings.run.id, tf

    async def before_bar(self, k: int, t_ms: int) -> None:
        """Before the ``k``-th decidable bar (open ``t_ms``): refit if the schedule says so, or if nothing is
        fitted yet (a resumed run refits at its last scheduled bar, which gives the same model)."""
        due = k - k % self.plan.retrain_every
        if self._fitted_k == due:
            return
        if due != k and self._fitted_k is None:
            log.info("resumed mid-schedule: refitting the model of bar #%d", due)
        self.fit(t_ms if due == k else self._bar_of(k, due, t_ms), due // self.plan.retrain_every + 1)
        self._fitted_k = due

    def _bar_of(self, k: int, due: int, t_ms: int) -> int:
        """Open time of decidable bar ``due`` given bar ``k`` at ``t_ms`` (bar times of the store's data)."""
        i = int(np.searchsorted(self.times, t_ms)) - (k - due)
        return int(self.times[i])

    def fit(self, at_ms: int, version: int = 1) -> Retrain:
        """Fit on the configured window strictly before ``at_ms`` and serve it from bar ``at_ms`` on."""
        from strategies.workflow import fit_range

        tf = self.settings.market.timeframe_ms
        first = self.store.first_ms()
        start = first if self.plan.train_window == "expanding" else max(first, at_ms - self.plan.train_bars * tf)
        t0 = time.perf_counter()
        fitted = fit_range(self.store, self.plan.model, self.settings.model, start, at_ms, self.device)
        seconds = time.perf_counter() - t0
        best = fitted.summary.get("best_val_nll")
        self.predictor.swap(serve_fitted(self.settings, self.plan.model, fitted, self.store, start, at_ms,
                                         self.device), at_ms)
        r = Retrain(at_ms, start, at_ms, fitted.train_range, fitted.val_range,
                    float(best) if isinstance(best, (int, float)) else None, seconds)
        self.retrains.append(r)
        self._refitted(version, self.plan.model, start, at_ms, seconds, self.device, r.best_val_nll)
        log.info("walk-forward refit for bar %s: trained on %s, validated on %s, best val NLL %s, %.1f s",
                 utc_minute(at_ms), utc_span(*r.train_range), utc_span(*r.val_range),
                 "n/a" if r.best_val_nll is None else f"{r.best_val_nll:.4f}", seconds)
        return r


def serve_fitted(settings: Settings, kind: str, fitted: Any, store: Any, start_ms: int, end_ms: int,
                 device: Any) -> Any:
    """A predictor serving ``fitted`` (what :func:`strategies.workflow.fit_range` returned for ``[start_ms,
    end_ms)`` of ``store``) from memory, as the checkpoint ``bot train`` would save of it is served: with its
    validation range's skill and calibration as the scoring stage's seed."""
    from strategies.checkpoint import Checkpoint
    from strategies.features import FEATURES
    from strategies.predictor import TorchPredictor
    from strategies.workflow import assessment_seed, data_range

    summary = {**fitted.summary, "assessment": assessment_seed(fitted, store)}
    ckpt = Checkpoint(kind, fitted.forecaster, fitted.scaler, tuple(s.symbol for s in store.series),
                      tuple(FEATURES), settings.market.timeframe, data_range(store.series, start_ms, end_ms),
                      "walk-forward", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), summary, "{}")
    return TorchPredictor(ckpt, device, cuda_graph=settings.model.cuda_graph,
                          sigma_floor=settings.model.baseline.sigma_floor)


class FoldSchedule(RefitLog):
    """Each evaluation fold's model served on its own test block: the walk-forward backtest of ``bot evaluate``.

    ``folds`` are ``((train_from, train_to), (test_from, test_to))`` ranges as
    :func:`strategies.evaluate.make_folds` cuts them.  Before the first bar of a test block the model is fitted
    on that fold's training range with :func:`strategies.workflow.fit_range` — the call the evaluation makes,
    so on the CPU (deterministic training) it is the same model the scores are of — and swapped in;
    :class:`WalkForwardPredictor` refuses a bar its model's range reaches.
    """

    def __init__(self, settings: Settings, kind: str, model: Any, data: Mapping[str, Series],
                 folds: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> None:
        from bot.runs.backtest import series_floats
        from strategies.dataset import FeatureStore, MarketSeries
        from strategies.predictor import resolve_device
        from strategies.workflow import model_horizon

        self.settings, self.kind, self.model, self.folds = settings, kind, model, list(folds)
        tf = settings.market.timeframe_ms
        series = [MarketSeries(s, data[s].open_ms, series_floats(data[s]), tf) for s in settings.market.symbols]
        self.store = FeatureStore(series, horizon=model_horizon(kind, model))
        self.device = resolve_device(settings.model.device)
        self.predictor = WalkForwardPredictor(kind, settings.model.baseline.sigma_floor)
        self.fitted: list[dict[str, Any]] = []
        self._next = 0
        self.run_id, self.tf_ms = settings.run.id, tf

    async def before_bar(self, k: int, t_ms: int) -> None:
        """Fit and swap in the fold whose test block the bar ``t_ms`` is in (folds before it are skipped)."""
        from strategies.workflow import fit_range

        fold = None
        while self._next < len(self.folds) and t_ms >= self.folds[self._next][1][0]:
            fold, self._next = self._next, self._next + 1
        if fold is None:
            return
        (start, end), test = self.folds[fold]
        t0 = time.perf_counter()
        fitted = fit_range(self.store, self.kind, self.model, start, end, self.device)
        self.predictor.swap(serve_fitted(self.settings, self.kind, fitted, self.store, start, end, self.device),
                            end)
        seconds = time.perf_counter() - t0
        self.fitted.append({"fold": fold, "train": [start, end], "test": list(test), "seconds": round(seconds, 2)})
        best = fitted.summary.get("best_val_nll")
        self._refitted(fold + 1, self.kind, start, end, seconds, self.device,
                       float(best) if isinstance(best, (int, float)) else None)


async def trade_range(settings: Settings, data: Mapping[str, Series], start_ms: int | None, end_ms: int | None,
                      predictor: Any = None, before_bar: Any = None) -> Any:
    """Backtest ``[start_ms, end_ms)`` into ``run.db`` (with ``predictor``, else the config's model) and read
    the run back: its :class:`~bot.reporting.summary.TradingSummary` (None without an equity mark).

    The trading value of one evaluation fold: a model fitted on the fold's history, served by
    :func:`serve_fitted`, traded on the fold's test block through the engine ``bot backtest`` runs.
    """
    from bot.reporting.review import build_review
    from bot.reporting.summary import trading_summary
    from bot.reporting.tradelog import load_trade_log
    from bot.runs.backtest import run_backtest

    models = getattr(before_bar, "__self__", None)    # a FoldSchedule's refits go to the models table
    await run_backtest(settings, data, start_ms, end_ms, predictor=predictor, before_bar=before_bar,
                       models=models if isinstance(models, RefitLog) else None)
    return await asyncio.to_thread(lambda: trading_summary(build_review(load_trade_log(settings.run.db,
                                                                                       settings.run.id))))
