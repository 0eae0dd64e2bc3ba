"""Walk-forward evaluation of the forecasters against persistence/EWMA and GARCH(1,1).

The common history of the symbols is cut in time.  The last ``test_fraction``
is the held-out part, split into ``folds`` consecutive test blocks.  For each
block every model is trained afresh on the history before it (``expanding``:
all of it; ``rolling``: the latest ``rolling_bars``), with the latest share of
that history as its validation range, then forecasts the block.  Nothing is
tuned on a test block: hyperparameters come from the config, and the only
choices made in fitting (early stopping, K, fusion weights) use the validation range.

Baselines, per symbol and fold:

* **persistence**: μ = 0 (random walk), σ = RiskMetrics EWMA (λ = 0.94), no fitting;
* **garch**: μ = 0, σ from a Gaussian GARCH(1,1) (``arch``) fitted on the fold's
  training history, then filtered through the test block with fixed parameters.

Every model and baseline is scored on the same samples: the (symbol, bar)
pairs for which all of them have a forecast.  Scores are in percent log-return
units (``strategies.metrics``): MAPE of the next close, RMSE, directional
accuracy, Gaussian NLL, CRPS, and 68 %/95 % interval coverage.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from strategies import baselines, metrics
from strategies.dataset import FeatureStore, MarketSeries, WindowDataset
from strategies.features import TARGET_SCALE
from strategies.models.base import Progress, forecast_dataset
from strategies.settings import ModelSettings
from strategies.workflow import fit_range, model_horizon

log = logging.getLogger("strategies.evaluate")

BASELINES = ("persistence", "garch")


@dataclass
class Folds:
    train: list[tuple[int, int]]
    test: list[tuple[int, int]]


def make_folds(store: FeatureStore, folds: int, test_fraction: float, scheme: str, rolling_bars: int) -> Folds:
    """Time ranges ``[start, end)`` of each fold's training history and test block."""
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if scheme not in ("expanding", "rolling"):
        raise ValueError(f"scheme must be 'expanding' or 'rolling', got {scheme!r}")
    tf = store.series[0].timeframe_ms
    first, last = store.first_ms(), store.last_ms() + tf
    test_start = first + int((1.0 - test_fraction) * (last - first)) // tf * tf
    edges = [test_start + (last - test_start) * k // folds // tf * tf for k in range(folds)] + [last]
    out = Folds([], [])
    for a, b in zip(edges[:-1], edges[1:]):
        start = first if scheme == "expanding" else max(first, a - rolling_bars * tf)
        out.train.append((start, a))
        out.test.append((a, b))
    return out


@dataclass
class Predictions:
    """One model's test forecasts, keyed by (symbol index, decision bar)."""

    sym: list[np.ndarray] = field(default_factory=list)
    ms: list[np.ndarray] = field(default_factory=list)
    mu: list[np.ndarray] = field(default_factory=list)
    sigma: list[np.ndarray] = field(default_factory=list)

    def add(self, sym: np.ndarray, ms: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> None:
        self.sym.append(sym.astype(np.int64))
        self.ms.append(ms.astype(np.int64))
        self.mu.append(mu.astype(np.float64))
        self.sigma.append(sigma.astype(np.float64))

    def table(self) -> dict[tuple[int, int], tuple[float, float]]:
        s, m, mu, sd = (np.concatenate(v) for v in (self.sym, self.ms, self.mu, self.sigma))
        return {(int(a), int(b)): (float(c), float(d)) for a, b, c, d in zip(s, m, mu, sd)}


def _model_test_forecasts(ds: WindowDataset, mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flatten a model's step-1 forecasts to (symbol index, decision ms, mu, sigma) rows."""
    if ds.aligned:
        n, a = ds.ends.shape
        sym = np.tile(np.arange(a), n)
        ends = ds.ends.reshape(-1)
        return sym, ds.open_ms[ends], mu[:, :, 0].reshape(-1), sigma[:, :, 0].reshape(-1)
    return ds.symbol_index(), ds.decision_ms(), mu[:, 0], sigma[:, 0]


def _baseline_forecasts(store: FeatureStore, i: int, train: tuple[int, int], test: tuple[int, int]
                        ) -> dict[str, tuple[np.ndarray, ...]]:
    """Persistence/EWMA and GARCH(1,1) forecasts of symbol ``i`` for decision bars in ``test``."""
    s = store.series[i]
    close = s.ohlcv[:, 3]
    r = np.zeros(len(close))
    r[1:] = np.diff(np.log(close)) * TARGET_SCALE           # r[j]: return of bar j
    # Forecast of r[j + 1] is made at the close of decision bar j.
    dec = np.flatnonzero((s.open_ms >= test[0]) & (s.open_ms < test[1]))
    dec = dec[dec + 1 < len(close)]
    ew_mu, ew_sigma = baselines.persistence_ewma(r)
    train_idx = np.flatnonzero((s.open_ms >= train[0]) & (s.open_ms < train[1]))
    g_lo, g_hi = int(train_idx[0]) + 1, int(train_idx[-1]) + 1   # returns of the training bars
    params = baselines.garch11_fit(r[g_lo:g_hi])
    g_mu, g_sigma = baselines.garch11_forecast(params, r[g_lo:], start=0)
    ms = s.open_ms[dec]
    sym = np.full(len(dec), i)
    return {
        "persistence": (sym, ms, ew_mu[dec + 1], ew_sigma[dec + 1]),
        "garch": (sym, ms, g_mu[dec + 1 - g_lo], g_sigma[dec + 1 - g_lo]),
    }


@dataclass
class EvalResult:
    symbols: tuple[str, ...]
    models: tuple[str, ...]
    folds: list[dict[str, Any]]
    scores: dict[str, dict[str, dict[str, float]]]     # symbol → model → metric → value
    fits: list[dict[str, Any]]

    def to_json(self) -> str:
        return json.dumps({"symbols": self.symbols, "models": self.models, "folds": self.folds,
                           "scores": self.scores, "fits": self.fits}, indent=2, sort_keys=True)


ModelSpec = tuple[str, str, ModelSettings]   # (label in the table, forecaster kind, its [model] settings)


def _walk_model(series: Sequence[MarketSeries], spec: ModelSpec, fold_ranges: Folds, device: torch.device | str,
                progress: Progress | None = None, on_fold: Callable[[str], None] | None = None,
                threads: int = 0) -> tuple[Predictions, list[dict[str, Any]]]:
    """One model through every fold: train on the fold's history, forecast its test block."""
    if threads:
        torch.set_num_threads(threads)
    label, kind, settings = spec
    store = FeatureStore(series, horizon=model_horizon(kind, settings))
    preds, fits = Predictions(), []
    for k, (train, test) in enumerate(zip(fold_ranges.train, fold_ranges.test)):
        if on_fold:
            on_fold(f"fold {k + 1}/{len(fold_ranges.test)}: {label}")
        t0 = time.perf_counter()
        fitted = fit_range(store, kind, settings, train[0], train[1], device, progress)
        ds = fitted.dataset(store, test[0], test[1])
        mu, sigma = forecast_dataset(fitted.forecaster, ds)
        preds.add(*_model_test_forecasts(ds, mu, sigma))
        fits.append({"fold": k, "model": label, "seconds": round(time.perf_counter() - t0, 2),
                     **{key: v for key, v in fitted.summary.items() if isinstance(v, (int, float, str))}})
        log.info("fold %d %s: %.1f s", k, label, time.perf_counter() - t0)
    return preds, fits


def evaluate(series: Sequence[MarketSeries], models: Sequence[ModelSpec], *, folds: int = 3,
             test_fraction: float = 0.3, scheme: str = "expanding", rolling_bars: int = 17_520,
             device: torch.device | str = "cpu", progress: Progress | None = None,
             on_fold: Callable[[str], None] | None = None, jobs: int = 1) -> EvalResult:
    """Walk-forward evaluation of ``models`` and the baselines; see the module docstring.

    ``jobs > 1`` trains that many models at once in separate processes (each with
    its share of the CPU threads, all on ``device``).  On the CPU, where training is
    deterministic, the scores match ``jobs = 1`` to about 1e-6: only the thread count differs.
    """
    labels = [label for label, _, _ in models]
    if len(set(labels)) != len(labels) or set(labels) & set(BASELINES):
        raise ValueError(f"model labels must be unique and differ from {BASELINES}: {labels}")
    base = FeatureStore(series, horizon=1)       # targets and closes for the baselines
    fold_ranges = make_folds(base, folds, test_fraction, scheme, rolling_bars)
    preds: dict[str, Predictions] = {}
    fits: list[dict[str, Any]] = []
    if jobs > 1 and len(models) > 1:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // min(jobs, len(models)))
        with ProcessPoolExecutor(min(jobs, len(models)), mp_context=mp.get_context("spawn")) as pool:
            futures = {spec[0]: pool.submit(_walk_model, list(series), spec, fold_ranges, str(device),
                                            None, None, threads) for spec in models}
            for label, fut in futures.items():
                preds[label], model_fits = fut.result()
                fits.extend(model_fits)
                if on_fold:
                    on_fold(f"{label}: done")
    else:
        for spec in models:
            preds[spec[0]], model_fits = _walk_model(series, spec, fold_ranges, device, progress, on_fold)
            fits.extend(model_fits)
    for name in BASELINES:
        preds[name] = Predictions()
    for train, test in zip(fold_ranges.train, fold_ranges.test):
        for i in range(len(base.symbols)):
            for name, rows in _baseline_forecasts(base, i, train, test).items():
                preds[name].add(*rows)
    fold_info = [{"fold": k, "train": list(tr), "test": list(te)}
                 for k, (tr, te) in enumerate(zip(fold_ranges.train, fold_ranges.test))]
    return EvalResult(base.symbols, (*labels, *BASELINES), fold_info, _score(base, preds), fits)


def _score(store: FeatureStore, preds: dict[str, Predictions]) -> dict[str, dict[str, dict[str, float]]]:
    """Score every model on the (symbol, bar) samples all of them forecast."""
    tables = {name: p.table() for name, p in preds.items()}
    common = set.intersection(*(set(t) for t in tables.values()))
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for i, sym in enumerate(store.symbols):
        keys = sorted(key for key in common if key[0] == i)
        if not keys:
            continue
        s = store.series[i]
        pos = np.searchsorted(s.open_ms, np.array([m for _, m in keys]))
        close_t, close_next = s.ohlcv[pos, 3], s.ohlcv[pos + 1, 3]
        y = np.log(close_next / close_t) * TARGET_SCALE
        scores[sym] = {}
        for name, t in tables.items():
            mu = np.array([t[key][0] for key in keys])
            sigma = np.array([t[key][1] for key in keys])
            scores[sym][name] = metrics.score_all(close_t, close_next, mu, sigma, y)
            scores[sym][name].update(_assessed_scores(mu, sigma, y))
    return scores


def _assessed_scores(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The forecasts as the engine's scoring stage would have turned them, bar by bar, with the default
    settings and no seed: NLL of the calibrated density, coverage of the calibrated intervals, and the share
    of bars on which the model had demonstrated skill (its μ not scaled to 0).  Consecutive samples only
    approximately: a fold boundary or a gap is not a restart here."""
    from strategies.assessed import assess_sequence
    from strategies.calibration import nll
    from strategies.settings import ForecastSettings

    out = assess_sequence(mu.tolist(), sigma.tolist(), y.tolist(), ForecastSettings())
    m = np.array([f.mu for f in out])
    sd = np.array([f.sigma for f in out])
    z68 = np.array([f.z68 for f in out])
    z95 = np.array([f.z95 for f in out])
    nu = np.array([f.nu for f in out])
    dev = np.abs(y - m)
    return {"cal_nll": float(np.mean(nll(m, sd, y, z68, nu))), "cal_cov68": float(np.mean(dev <= z68 * sd)),
            "cal_cov95": float(np.mean(dev <= z95 * sd)), "skill_share": float(np.mean([f.skill > 0 for f in out]))}
