"""Command line: ``bot run | demo | replay-server | report | status | serve | train | evaluate | download | backtest
| sweep``.

Exit codes: 0 success, 2 bad configuration or arguments (an output path that cannot be written
included, checked before the work), 3 unusable data, database or file, 4 the exchange could not be
used for live trading at start, 130 interrupted.  Each failure prints one line naming what was wrong,
never a traceback (tests/e2e/test_cli_errors.py drives every command through such cases).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from bot.config import TIMEFRAMES_MS, Settings, load_settings
from bot.errors import ConfigError, DataError, ExecutionError
from bot.store.files import read_only

log = logging.getLogger("bot")

DEMO_START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC: a fixed start keeps the demo reproducible


def _setup_logging(settings: Settings, level: str | None = None) -> None:
    """Log as ``[run]`` says, with any API credentials masked wherever they might appear."""
    from bot.cli.logs import setup_run_logging
    from bot.config.secrets import load_credentials
    from bot.notify.delivery import notify_secrets
    from bot.web.serve import api_token

    creds = load_credentials()
    token = api_token() if settings.api.enabled else None
    setup_run_logging(settings.run, (*(creds.values() if creds else ()), *((token,) if token else ()),
                                     *notify_secrets(settings.notify)), level)


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _run(settings: Settings, max_bars: int | None, stop_after_bar_ms: int | None = None,
               live: bool = False) -> int:
    from bot.runs.daemon import run_daemon

    stop = asyncio.Event()
    _install_stop_handlers(stop)
    result = await run_daemon(settings, stop, max_bars, stop_after_bar_ms, live=live)
    s = result.stats
    print(f"run {result.run_id!r} session {result.session_no}: {s.bars} bars decided, {s.fills} fills, "
          f"{result.feed_counts.get('rejected', 0)} frames rejected; trade log {settings.run.db}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot.config.secrets import check_live_guard, load_credentials
    from bot.store.files import check_trade_log_file

    settings = load_settings(args.config)
    if args.db:
        settings = settings.with_overrides(run={"db": args.db})
    check_trade_log_file(Path(settings.run.db))   # before the model, the exchange and the feed
    # Before anything starts: real orders need run.mode = "live" and --live together.  (The guard that
    # cannot be bypassed sits where the exchange executor is built; this one only fails early.)
    check_live_guard(settings.run.mode, args.live, load_credentials())
    _setup_logging(settings)
    return asyncio.run(_run(settings, args.max_bars, args.stop_after_bar, args.live))


async def _demo(args: argparse.Namespace) -> int:
    from bot.cli.progress import with_progress
    from bot.feeds.replay.server import ReplayExchange
    from bot.feeds.replay.synthetic import generate_market
    from bot.reporting.run_report import format_report, load_report
    from bot.runs.daemon import run_daemon

    base = demo_settings(load_settings(args.config))
    symbols = list(args.symbols or base.market.symbols)
    history = base.market.window
    data = generate_market(symbols, history + args.bars + 1, DEMO_START_MS,
                           timeframe_ms=TIMEFRAMES_MS[base.market.timeframe], seed=args.seed)
    async with ReplayExchange(data, timeframe=base.market.timeframe, bar_interval_s=args.bar_interval,
                              start_index=history) as exchange:
        settings = base.with_overrides(
            run={"db": args.db, "id": args.run_id},
            market={"symbols": symbols},
            feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 2.0},
        )
        print(f"demo: replaying {args.bars} synthetic hourly bars of {', '.join(symbols)} "
              f"(seed {args.seed}; not market data) from {exchange.ws_url}")
        stop = asyncio.Event()
        _install_stop_handlers(stop)
        result = await with_progress(run_daemon(settings, stop, max_bars=args.bars), args.db, args.run_id,
                                     args.bars, label="demo bars")
    lat = sorted(result.stats.latencies)
    if lat:
        print(f"decided {result.stats.bars} bars; closed-kline-to-commit latency p50 "
              f"{lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms "
              "(the first bars also wait for the warm-up backfill)")
    print(format_report(load_report(args.db, result.run_id)))
    return 0


def demo_settings(settings: Settings) -> Settings:
    """The demo paper-trades by construction: ``run.mode`` is forced to paper whatever the config says."""
    if settings.run.mode != "paper":
        print(f"demo: paper trading only; run.mode {settings.run.mode!r} in the config is ignored")
    return settings.with_overrides(run={"mode": "paper"})


def _clear_demo_log(db: str, run_id: str) -> None:
    """Replace an earlier demo's trade log; refuse to touch a file that holds anything else."""
    import sqlite3

    path = Path(db)
    if not path.exists():
        return
    try:
        with closing(read_only(path)) as conn:
            runs = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{db} exists and is not a demo trade log ({exc}); choose another --db") from exc
    if runs - {run_id}:
        raise DataError(f"{db} holds other runs ({', '.join(sorted(runs))}); the demo will not overwrite it")
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.store.files import check_trade_log_file

    if args.bars < 1:
        raise ConfigError(f"--bars must be at least 1, got {args.bars}")
    _clear_demo_log(args.db, args.run_id)
    check_trade_log_file(Path(args.db))
    _setup_logging(load_settings(args.config), "INFO" if args.verbose else "WARNING")
    return asyncio.run(_demo(args))


async def _replay_server(args: argparse.Namespace) -> int:
    from bot.feeds.replay.csvdata import load_ohlcv_csv, symbol_from_filename
    from bot.feeds.replay.server import ReplayExchange
    from bot.feeds.replay.synthetic import generate_market

    tf_ms = TIMEFRAMES_MS[args.timeframe]
    if args.data:
        data = {symbol_from_filename(p): load_ohlcv_csv(p) for p in args.data}
    else:
        symbols = args.symbols or ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
        data = generate_market(symbols, args.history + args.synthetic_bars, DEMO_START_MS, tf_ms, seed=args.seed)
    bar_interval = tf_ms / 1000 / args.speed
    stop = asyncio.Event()
    _install_stop_handlers(stop)
    async with ReplayExchange(data, timeframe=args.timeframe, host=args.host, port=args.port,
                              bar_interval_s=bar_interval, start_index=args.history) as exchange:
        print(f"replaying {', '.join(sorted(data))} at {args.speed:g}x ({bar_interval:.3f} s per bar)")
        print(f"  [feed] ws_url = \"{exchange.ws_url}\"")
        print(f"  [feed] rest_url = \"{exchange.rest_url}\"", flush=True)
        await stop.wait()
    return 0


def cmd_replay_server(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ConfigError(f"--speed must be positive, got {args.speed}")
    if args.timeframe not in TIMEFRAMES_MS:
        raise ConfigError(f"--timeframe {args.timeframe!r} is not one of {', '.join(TIMEFRAMES_MS)}")
    _setup_logging(Settings(), "INFO")
    return asyncio.run(_replay_server(args))


def cmd_report(args: argparse.Namespace) -> int:
    from bot.cli.report import run
    from bot.sweep.store import is_sweep_file

    if not Path(args.db).exists():
        raise DataError(f"no trade log at {args.db}")
    if is_sweep_file(args.db):   # a `bot sweep` results file: its table and selection
        from bot.sweep.report import analyse, format_analysis, load_rows

        print("\n".join(format_analysis(analyse(load_rows(args.db)), top=20)))
        return 0
    return run(args)


def cmd_status(args: argparse.Namespace) -> int:
    from bot.reporting.status import format_status, load_status

    if not Path(args.db).exists():
        raise DataError(f"no trade log at {args.db}")
    print(format_status(load_status(args.db, args.run)), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.sweep.store import is_sweep_file
    from bot.web.serve import run

    if Path(args.db).is_file() and is_sweep_file(args.db):
        from bot.sweep.dashboard import create_sweep_app

        return run(args, create_sweep_app)
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bot", description="Uncertainty-aware paper-trading bot for crypto markets.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the paper-trading daemon until SIGINT/SIGTERM")
    r.add_argument("--config", type=Path, default=None, help="config.toml (default: the embedded defaults)")
    r.add_argument("--db", default=None, help="override [run] db")
    r.add_argument("--max-bars", type=int, default=None, help="stop after deciding this many bars")
    r.add_argument("--stop-after-bar", type=int, default=None, metavar="BAR_MS",
                   help="stop once the bar opening at BAR_MS (UTC ms) is decided")
    r.add_argument("--live", action="store_true", help="place real orders; needs run.mode = \"live\" in the "
                   "config too, and BOT_API_KEY/BOT_API_SECRET in the environment (default: paper)")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="offline demo: embedded replay exchange + daemon + report")
    d.add_argument("--bars", type=int, default=300, help="hours of synthetic market to trade (default 300)")
    d.add_argument("--db", default="demo.sqlite", help="trade log to write (default demo.sqlite)")
    d.add_argument("--config", type=Path, default=None, help="config.toml for model/decision/paper settings")
    d.add_argument("--symbols", nargs="+", default=None, help="symbols to simulate (default: the config's)")
    d.add_argument("--seed", type=int, default=7, help="seed of the synthetic market")
    d.add_argument("--run", "--run-id", dest="run_id", metavar="ID", default="demo",
                   help="run id in the trade log (default demo); a rerun replaces an earlier demo's log at --db")
    d.add_argument("--bar-interval", type=float, default=0.01, help="seconds between replayed bars (default 0.01)")
    d.add_argument("-v", "--verbose", action="store_true", help="show the daemon's log")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("replay-server", help="serve recorded or synthetic klines as a Binance-like exchange")
    s.add_argument("--data", nargs="+", type=Path, default=None,
                   help="OHLCV CSV files (open_time,open,high,low,close,volume), e.g. BTCUSDT-1h.csv.gz")
    s.add_argument("--symbols", nargs="+", default=None, help="symbols for synthetic data when no --data")
    s.add_argument("--synthetic-bars", type=int, default=2000, help="bars of synthetic data when no --data")
    s.add_argument("--seed", type=int, default=7, help="seed of the synthetic market (default 7)")
    s.add_argument("--speed", type=float, default=3600.0, help="replay speed as a multiple of real time "
                   "(default 3600: one hourly bar per second)")
    s.add_argument("--history", type=int, default=128, help="leading bars served over REST only (warm-up)")
    s.add_argument("--timeframe", default="1h", help="bar length of the data served (default 1h)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    s.set_defaults(func=cmd_replay_server)

    rep = sub.add_parser("report", help="review a trade log: performance, trades, forecast quality, the gate")
    from bot.cli.report import add_arguments

    add_arguments(rep)
    rep.set_defaults(func=cmd_report)

    st = sub.add_parser("status", help="where a run stands now: last bar, positions, state, feed health")
    st.add_argument("--db", required=True, help="SQLite trade log")
    st.add_argument("--run", default=None, help="run id (default: the most recent)")
    st.set_defaults(func=cmd_status)

    sv = sub.add_parser("serve", help="dashboard and JSON API over a trade log (read-only; controls need "
                        "BOT_API_TOKEN)", description="Serve the dashboard and JSON API over a trade log, "
                        "e.g. bot serve --db demo.sqlite, then open http://127.0.0.1:8080/.")
    from bot.web.serve import add_arguments as add_serve_arguments

    add_serve_arguments(sv)
    sv.set_defaults(func=cmd_serve)

    from bot.cli.data import add_parsers as add_data_parsers
    from bot.cli.models import add_parsers

    add_parsers(sub)
    add_data_parsers(sub)
    from bot.cli.backtest import add_parsers as add_backtest_parsers

    add_backtest_parsers(sub)
    from bot.cli.sweep import add_parsers as add_sweep_parsers

    add_sweep_parsers(sub)
    from bot import __version__
    from bot.cli.help import finish_help

    finish_help(p, __version__)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"data error: {exc}", file=sys.stderr)
        return 3
    except ExecutionError as exc:
        print(f"execution error: {exc}", file=sys.stderr)
        return 4
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as exc:   # a file the command reads or writes failed under it (disk full, permissions)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"file error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
