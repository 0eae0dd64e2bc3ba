"""``bot train`` and ``bot evaluate``: OHLCV CSV files in, a checkpoint or an evaluation table out.

Both read the CSV format of ``shared/data`` and ``bot replay-server``
(``open_time,open,high,low,close,volume``, optionally gzipped), one file per
symbol, the symbol taken from the file name (``BTCUSDT-1h.csv.gz`` → BTC/USDT).
The model's shape and training settings come from ``[model]`` of the config.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.cli.progress import Bars
from bot.config import TIMEFRAMES_MS, Settings, load_settings
from bot.errors import ConfigError, DataError
from bot.retrain.training import train_checkpoint  # noqa: F401  (bot train's step; scripts import it from here)
from strategies.settings import MODELS

log = logging.getLogger("bot.models")

EVAL_MODELS = ("cnn_gru", "lstm", "knn", "fusion_late", "fusion_stacking", "multi_asset")
TRAINABLE = tuple(m for m in MODELS if m != "baseline")


def parse_day(text: str | None) -> int | None:
    """``YYYY-MM-DD`` (UTC midnight) → epoch ms; None passes through."""
    if text is None:
        return None
    try:
        d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ConfigError(f"date {text!r} is not YYYY-MM-DD") from exc
    return int(d.timestamp() * 1000)


def find_csv(paths: Sequence[Path], symbols: Sequence[str] | None, timeframe: str) -> dict[str, Path]:
    """The CSV file of each of ``symbols`` (default: every file given) among files and directories."""
    from bot.feeds.replay.csvdata import symbol_from_filename

    files: dict[str, Path] = {}
    for p in paths:
        if p.is_dir():
            candidates = sorted(p.glob(f"*-{timeframe}.csv*"))
        elif p.exists():
            candidates = [p]
        else:
            raise DataError(f"{p}: no such file or directory")
        for f in candidates:
            files.setdefault(symbol_from_filename(f), f)
    wanted = list(symbols) if symbols else sorted(files)
    missing = [s for s in wanted if s not in files]
    if missing:
        raise DataError(f"no CSV for {', '.join(missing)} in {', '.join(map(str, paths))}; "
                        f"found {', '.join(sorted(files)) or 'none'}")
    return {s: files[s] for s in wanted}


def load_market(paths: Sequence[Path], symbols: Sequence[str] | None, timeframe: str) -> list[Any]:
    """MarketSeries for ``symbols`` (default: every file given) from files or directories of CSVs."""
    from bot.feeds.replay.csvdata import load_ohlcv_csv
    from strategies.dataset import MarketSeries

    tf_ms = TIMEFRAMES_MS[timeframe]
    out = []
    for sym, path in find_csv(paths, symbols, timeframe).items():
        s = load_ohlcv_csv(path, tf_ms)
        cols = [np.asarray(c, dtype=np.float64) for c in (s.open, s.high, s.low, s.close, s.volume)]
        out.append(MarketSeries(sym, s.open_ms, np.stack(cols, axis=1), tf_ms))
        log.info("%s: %d bars from %s", sym, len(s), path)
    return out


class _ProgressBars(Bars):
    """Draws the training events of ``strategies.models.base.Progress`` as rich progress bars."""

    def __init__(self, title: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn())
        self.title = title
        self.epoch_task: Any = None
        self.step_task: Any = None

    def set_title(self, title: str) -> None:
        self.title = title
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
            self.epoch_task = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        p = self.progress
        if event == "epoch":
            if self.epoch_task is None:
                self.epoch_task = p.add_task(self.title, total=info["epochs"], info="")
            p.update(self.epoch_task, completed=info["epoch"], total=info["epochs"],
                     info=f"train NLL {info['train_nll']:.4f}  val NLL {info['val_nll']:.4f}  "
                          f"{info.get('seconds', 0.0):.1f} s/epoch")
        elif event == "step":
            if self.step_task is None:
                self.step_task = p.add_task("  steps", total=info["steps"], info="")
            p.update(self.step_task, completed=info["step"], total=info["steps"])
        elif event == "message":
            p.console.print(info.get("text", ""))


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    train: dict[str, Any] = {}
    if getattr(args, "epochs", None) is not None:
        train["epochs"] = args.epochs
    if getattr(args, "max_steps", None) is not None:
        train["max_steps_per_epoch"] = args.max_steps
    if train:
        settings = settings.with_overrides(model={"train": {**json.loads(settings.to_json())["model"]["train"],
                                                            **train}})
    return settings


def cmd_train(args: argparse.Namespace) -> int:
    from bot.cli.outputs import check_output_file
    from strategies.predictor import TorchPredictor, resolve_device

    settings = _settings(args)
    first_day, end_day = parse_day(args.start), parse_day(args.end)   # before the data is read
    out = check_output_file(args.out or f"models/{args.model}.pt", "--out", makes_folders=True)
    timeframe = settings.market.timeframe
    symbols = tuple(args.symbols) if args.symbols else settings.market.symbols
    series = load_market(args.data, symbols, timeframe)
    device = resolve_device(args.device or settings.model.device)
    tf = TIMEFRAMES_MS[timeframe]
    # Default range: the bars every symbol has (FeatureStore.first_ms .. last_ms).
    start = first_day or max(int(s.open_ms[0]) for s in series)
    end = end_day or min(int(s.open_ms[-1]) for s in series) + tf
    print(f"training {args.model} on {', '.join(symbols)} ({timeframe}), device {device}")
    with _ProgressBars(f"{args.model} epochs") as bars:
        summary = train_checkpoint(settings, args.model, series, start, end, out, device, bars)
    seconds = summary["seconds"]
    for sym, a in summary["assessment"].items():
        from strategies.skill import SkillStats

        beta, se = SkillStats.from_list(a["skill"]).beta()
        print(f"  validation {sym}: skill slope {beta:.3f} (se {se:.3f}); 68 %/95 % multipliers "
              f"{a['calibration'][0]:.3f}/{a['calibration'][1]:.3f}")
    best = summary.get("best_val_nll")
    print(f"saved {out} after {seconds:.1f} s" + (f"; best validation NLL {best:.4f} per bar (percent returns)"
                                                  if isinstance(best, float) else ""))
    # A first forecast, as the engine would make it at the last bar of the data.
    from strategies.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out, device)
    predictor = TorchPredictor(ckpt, device, cuda_graph=False)
    need = predictor.min_window
    windows = np.stack([s.ohlcv[-need:] for s in series])
    last_ms = min(int(s.open_ms[-1]) for s in series)
    for f in predictor.predict(last_ms, symbols, windows):
        when = dt.datetime.fromtimestamp(f.bar_ms / 1000 + tf / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
        print(f"  next bar after {when} UTC  {f.symbol:>10}  mu {f.mu * 100:+.4f} %  sigma {f.sigma * 100:.4f} %")
    print(f"use it: set [model] name = \"{args.model}\" and checkpoint = \"{out}\" in config.toml, and "
          f"market.window ≥ {need}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bot.cli.outputs import check_output_file
    from strategies.evaluate import evaluate
    from strategies.predictor import resolve_device

    settings = _settings(args)
    if args.json:
        check_output_file(args.json, "--json")
    series = load_market(args.data, args.symbols, settings.market.timeframe)
    device = resolve_device(args.device or settings.model.device)
    specs = []
    for name in args.models:   # fusion_late / fusion_stacking: the fusion model with that method
        model = settings.model
        if name.startswith("fusion_"):
            method = name.split("_", 1)[1]
            model = dataclasses.replace(model, fusion=dataclasses.replace(model.fusion, method=method))
        specs.append((name, "fusion" if name.startswith("fusion_") else name, model))
    t0 = time.perf_counter()
    with _ProgressBars("epochs") as bars:
        r = evaluate(series, specs, folds=args.folds, test_fraction=args.test_fraction, scheme=args.scheme,
                     rolling_bars=args.rolling_bars, device=device, progress=bars, on_fold=bars.set_title,
                     jobs=args.jobs)
    result = {"scores": r.scores, "fits": r.fits, "folds": r.folds, "seconds": round(time.perf_counter() - t0, 1),
              "device": str(device), "command": "bot " + " ".join(args.argv)}
    print(format_table(result))
    if args.trading:
        t1 = time.perf_counter()
        result["trading"] = evaluate_trading(settings, specs, r.folds, args.data, args.symbols, args.trading,
                                             str(device))
        result["trading_seconds"] = round(time.perf_counter() - t1, 1)
        print(format_trading(result["trading"], args.trading))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0


BASELINES = ("persistence", "garch")


def evaluate_trading(settings: Settings, specs: Sequence[tuple[str, str, Any]], folds: Sequence[dict[str, Any]],
                     paths: Sequence[Path], symbols: Sequence[str] | None, db: str,
                     device: str = "cpu") -> list[dict[str, Any]]:
    """Trade the held-out range with each evaluated model (and the baseline predictor) through the engine.

    Each model is refitted per fold on the fold's training range, as the evaluation fitted it (the same
    weights on the CPU, where training is deterministic), and serves that fold's test block
    (:class:`bot.runs.walkforward.FoldSchedule`); the config's risk and paper settings decide.  One run per
    model in the trade log ``db`` (run id ``evaluate-LABEL``; ``bot report`` reads it), summarised by
    :func:`bot.reporting.summary.trading_summary`.
    """
    from bot.feeds.replay.csvdata import load_ohlcv_csv
    from bot.runs.walkforward import FoldSchedule, trade_range
    from strategies.features import N_FEATURES, WARMUP
    from strategies.models.registry import new_forecaster

    timeframe = settings.market.timeframe
    files = find_csv(list(paths), symbols, timeframe)
    data = {s: load_ohlcv_csv(p, TIMEFRAMES_MS[timeframe]) for s, p in files.items()}
    ranges = [(tuple(f["train"]), tuple(f["test"])) for f in folds]
    start, end = ranges[0][1][0], ranges[-1][1][1]
    out = []
    for label, kind, model in [("baseline", "baseline", settings.model), *specs]:
        window = settings.market.window
        if kind != "baseline":
            lookback = new_forecaster(kind, model, N_FEATURES, tuple(data)).lookback
            window = max(window, lookback + WARMUP)
        s = settings.with_overrides(run={"db": db, "id": f"evaluate-{label}"},
                                    market={"symbols": list(data), "window": window},
                                    model={"name": kind, "device": device})
        schedule = None if kind == "baseline" else FoldSchedule(s, kind, model, data, ranges)  # type: ignore[arg-type]
        summary = asyncio.run(trade_range(s, data, start, end, schedule.predictor if schedule else None,
                                          schedule.before_bar if schedule else None))
        figures = summary.to_json() if summary else {}
        figures["forecast_model"] = figures.pop("model", None)
        out.append({**figures, "model": label, "run_id": s.run.id, "refits": schedule.fitted if schedule else []})
        log.info("traded %s on the held-out range", label)
    return out


def format_trading(rows: Sequence[dict[str, Any]], db: str) -> str:
    """The trading value of each model on the held-out range, as a text table."""
    cols = ("bars w/ fill", "fills", "fees/E0", "net", "before fees", "turnover", "Sharpe", "NLL", "cov68", "cov95")
    lines = [f"trading the held-out range through the engine (config's risk and costs; trade log {db}):",
             f"{'model':<16} " + " ".join(f"{c:>12}" for c in cols)]
    for r in rows:
        if "net_return" not in r:
            lines.append(f"{r['model']:<16} no equity mark")
            continue
        cells = (f"{r['fill_share']:.1%}", f"{r['fills']}", f"{r['fees_share']:.2%}", f"{r['net_return']:+.2%}",
                 f"{r['before_fees']:+.2%}", f"{r['turnover']:.1f}x",
                 "-" if r["sharpe"] is None else f"{r['sharpe']:.2f}", "-" if r["nll"] is None else f"{r['nll']:.4f}",
                 "-" if r["cov68"] is None else f"{r['cov68']:.3f}", "-" if r["cov95"] is None else f"{r['cov95']:.3f}")
        lines.append(f"{r['model']:<16} " + " ".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)


def format_table(result: dict[str, Any]) -> str:
    # cal_*: the forecasts as the engine's scoring stage turns them (calibrated density and intervals);
    # skill: share of bars with demonstrated skill (mu not scaled to 0). Older JSON files lack them.
    cols = ("mape", "rmse", "dir_acc", "nll", "crps", "cov68", "cov95", "cal_nll", "cal_cov68", "cal_cov95",
            "skill_share", "n")
    lines = [f"{'symbol':<10} {'model':<16} " + " ".join(f"{c.replace('_share', ''):>9}" for c in cols)]
    for sym, by_model in result["scores"].items():
        for name, m in by_model.items():
            # A zero-mean baseline has no direction to be right about.
            vals = [f"{'-':>9}" if c not in m or (c in ("dir_acc", "skill_share") and name in BASELINES)
                    else f"{m[c]:>9.0f}" if c == "n" else f"{m[c]:>9.4f}" for c in cols]
            lines.append(f"{sym:<10} {name:<16} " + " ".join(vals))
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("train", help="train a forecaster on OHLCV CSV files and save a checkpoint")
    t.add_argument("--data", nargs="+", type=Path, required=True, help="CSV files or directories of them")
    t.add_argument("--symbols", nargs="+", default=None, help="symbols to train on (default: the config's)")
    t.add_argument("--model", choices=TRAINABLE, default="cnn_gru", help="model to train (default cnn_gru)")
    t.add_argument("--out", default=None, help="checkpoint file (default models/MODEL.pt)")
    t.add_argument("--config", type=Path, default=None, help="config.toml for [model] and [market]")
    t.add_argument("--from", dest="start", default=None, help="first day of history used, YYYY-MM-DD")
    t.add_argument("--to", dest="end", default=None, help="day the history ends (exclusive), YYYY-MM-DD")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where to train (default: model.train.device; auto: CUDA when available)")
    t.add_argument("--epochs", type=int, default=None, help="override model.train.epochs")
    t.add_argument("--max-steps", type=int, default=None, help="override model.train.max_steps_per_epoch")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="walk-forward evaluation against persistence/EWMA and GARCH(1,1)")
    e.add_argument("--data", nargs="+", type=Path, required=True, help="CSV files or directories of them")
    e.add_argument("--symbols", nargs="+", default=None, help="symbols (default: every file given)")
    e.add_argument("--models", nargs="+", choices=EVAL_MODELS, default=list(EVAL_MODELS),
                   help="models to evaluate beside the baselines (default: all)")
    e.add_argument("--folds", type=int, default=3, help="walk-forward folds over the held-out range (default 3)")
    e.add_argument("--test-fraction", type=float, default=0.3, help="held-out share at the end (default 0.3)")
    e.add_argument("--scheme", choices=("expanding", "rolling"), default="expanding",
                   help="training window of each fold: all history before it, or the last --rolling-bars")
    e.add_argument("--rolling-bars", type=int, default=17_520, help="training bars of a rolling fold")
    e.add_argument("--json", default=None, help="write the scores as JSON here")
    e.add_argument("--jobs", type=int, default=1, help="models trained at once, in separate processes")
    e.add_argument("--trading", default=None, metavar="DB",
                   help="also trade the held-out range with each model (refitted per fold, as evaluated) and the "
                        "baseline through the engine, into this trade log; prints net return, fees, turnover, "
                        "share of bars traded, Sharpe")
    e.add_argument("--config", type=Path, default=None, help="config.toml for [model], [market] and the trading run")
    e.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where to train (default: model.train.device; auto: CUDA when available)")
    e.add_argument("--epochs", type=int, default=None, help="override model.train.epochs")
    e.add_argument("--max-steps", type=int, default=None, help="override model.train.max_steps_per_epoch")
    e.set_defaults(func=cmd_evaluate)
