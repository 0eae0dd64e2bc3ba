"""``bot backtest``: recorded OHLCV CSV files through the daemon's engine into a trade log.

    bot backtest --data DIR_OR_CSV... [--config config.toml] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                 [--db backtest.sqlite] [--run backtest]
                 [--walk-forward --model cnn_gru --retrain-every N --train-window expanding|rolling
                  [--train-bars M]]

The symbols are the config's ``market.symbols`` (or ``--symbols``), each found among the files given, as
``bot train`` does; everything else — window, model, risk, paper account — comes from the config.  The
result is an ordinary trade log: ``bot report`` reads it.  A run id already in ``--db`` is resumed after its
last committed bar (same config required), which is how an interrupted backtest is finished.  A finished run
prints its summary from the trade log (net return, fees, turnover, share of bars with a fill, Sharpe,
forecast NLL and coverage; :mod:`bot.reporting.summary`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from bot.cli.progress import Bars
from bot.config import TIMEFRAMES_MS
from bot.errors import ConfigError

log = logging.getLogger("bot.runs.backtest")


class _Bar(Bars):
    """A rich progress bar: bars decided, bar-events per second, ETA."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("bars  {task.fields[rate]} bar-events/s"), TimeRemainingColumn())
        self.task: Any = None

    def __call__(self, done: int, total: int, events: int) -> None:
        import time

        if self.task is None:
            self.task = self.progress.add_task("backtest", total=total, rate="-")
            self._t0, self._events0 = time.perf_counter(), events
            return
        elapsed = time.perf_counter() - self._t0
        rate = f"{(events - self._events0) / elapsed:,.0f}" if elapsed > 0 else "-"
        self.progress.update(self.task, completed=done, total=total, rate=rate)


async def _backtest(args: argparse.Namespace) -> int:
    from bot.cli.models import find_csv, parse_day
    from bot.config import load_settings
    from bot.feeds.replay.csvdata import load_ohlcv_csv
    from bot.runs.backtest import run_backtest
    from bot.store.files import check_trade_log_file

    # The arguments and the trade log first: a mistake stops the command before the data is read.
    start_ms, end_ms = parse_day(args.start), parse_day(args.end)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ConfigError(f"--to {args.end} must be after --from {args.start}")
    settings = load_settings(args.config)
    check_trade_log_file(Path(args.db))
    timeframe = settings.market.timeframe
    files = find_csv(args.data, args.symbols or settings.market.symbols, timeframe)
    data = {s: load_ohlcv_csv(p, TIMEFRAMES_MS[timeframe]) for s, p in files.items()}
    model: dict[str, Any] = {}
    if args.walk_forward:
        model = {"name": args.model}
    elif args.model is not None and args.model != settings.model.name:
        raise ConfigError(f"--model {args.model} without --walk-forward: set [model] name (and checkpoint) in "
                          "the config to backtest a trained checkpoint")
    settings = settings.with_overrides(run={"db": args.db, "id": args.run_id}, market={"symbols": list(files)},
                                       **({"model": model} if model else {}))
    walk = None
    before_bar = None
    predictor = None
    if args.walk_forward:
        from bot.runs.walkforward import WalkForward, WalkForwardPlan

        walk = WalkForward(settings, WalkForwardPlan(args.model, args.retrain_every, args.train_window,
                                                     args.train_bars), data)
        before_bar, predictor = walk.before_bar, walk.predictor
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"backtest {settings.run.id!r}: {len(data)} symbol(s) {', '.join(list(data)[:6])}"
          f"{' ...' if len(data) > 6 else ''}, model {settings.model.name}"
          f"{' (walk-forward)' if walk else ''}; trade log {settings.run.db}")
    with _Bar() as bar:
        result = await run_backtest(settings, data, start_ms, end_ms,
                                    predictor=predictor, commit_every=args.commit_every,
                                    precompute=not args.per_bar_predict, before_bar=before_bar, models=walk,
                                    progress=bar, stop=stop)
    s = result.stats
    if result.logged_before is not None:
        from bot.data.pages import fmt_ms

        a, b = result.logged_before
        print(f"resumed run {settings.run.id!r}: bars {fmt_ms(a)}..{fmt_ms(b)} were already in the log"
              + ("; every bar asked for is there, so nothing is left to decide" if not result.bars
                 and not result.stopped else "; the bars after them follow"))
    print(f"decided {result.bars} bars ({result.bar_events} bar-events) in {result.seconds:.1f} s: "
          f"{result.bar_events_per_s:,.0f} bar-events/s; {s.fills} fills, {s.liquidations} liquidations")
    if walk is not None:
        from bot.timefmt import utc_minute, utc_span

        for r in walk.retrains:
            nll = "n/a" if r.best_val_nll is None else f"{r.best_val_nll:.4f}"
            print(f"  refit for bar {utc_minute(r.at_bar_ms)}: trained {utc_span(*r.train_range)}, validated "
                  f"{utc_span(*r.val_range)}, best val NLL {nll}, {r.seconds:.1f} s")
    if result.stopped:
        print("interrupted: the decided bars are committed; run the same command again to finish")
        return 130
    for line in summary_lines(settings.run.db, settings.run.id):
        print(line)
    print(f"report: bot report --db {settings.run.db} --run {settings.run.id}")
    return 0


def summary_lines(db: str, run_id: str) -> list[str]:
    """What the run earned, paid and forecast, read back from its trade log as ``bot report`` reads it."""
    from bot.reporting.review import build_review
    from bot.reporting.summary import format_summary, trading_summary
    from bot.reporting.tradelog import load_trade_log

    summary = trading_summary(build_review(load_trade_log(db, run_id)))
    return ["no equity mark in the trade log"] if summary is None else format_summary(summary)


def cmd_backtest(args: argparse.Namespace) -> int:
    from bot.cli.models import TRAINABLE

    if args.walk_forward and args.model not in TRAINABLE:
        raise ConfigError(f"--walk-forward needs --model, one of {', '.join(TRAINABLE)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_backtest(args))


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("backtest", help="replay OHLCV CSV files through the engine at full speed into a trade log")
    b.add_argument("--data", nargs="+", type=Path, required=True, help="CSV files or directories of them")
    b.add_argument("--symbols", nargs="+", default=None, help="symbols to trade (default: the config's market.symbols)")
    b.add_argument("--config", type=Path, default=None, help="config.toml (default: the embedded defaults)")
    b.add_argument("--from", dest="start", default=None,
                   help="first day decided, YYYY-MM-DD (the window bars before it only warm up)")
    b.add_argument("--to", dest="end", default=None, help="day the backtest ends (exclusive), YYYY-MM-DD")
    b.add_argument("--db", default="backtest.sqlite", help="trade log to write (default backtest.sqlite)")
    b.add_argument("--run", "--run-id", dest="run_id", metavar="ID", default="backtest",
                   help="run id in the trade log (default backtest); an existing one is resumed")
    b.add_argument("--commit-every", type=int, default=None,
                   help="bars per trade-log transaction (default: about 2,000 bar-events' worth, at most 500 bars)")
    b.add_argument("--per-bar-predict", action="store_true",
                   help="call the baseline once per bar instead of precomputing its forecasts (same numbers)")
    b.add_argument("--walk-forward", action="store_true", help="refit --model every --retrain-every bars on "
                   "the history before the bar")
    b.add_argument("--model", default=None, help="model refitted by --walk-forward (e.g. cnn_gru)")
    b.add_argument("--retrain-every", type=int, default=720, help="bars between refits (default 720: 30 days)")
    b.add_argument("--train-window", choices=("expanding", "rolling"), default="expanding",
                   help="history of each refit: all bars before it, or the last --train-bars (default expanding)")
    b.add_argument("--train-bars", type=int, default=None, help="bars of history per refit with rolling")
    b.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    b.set_defaults(func=cmd_backtest)
