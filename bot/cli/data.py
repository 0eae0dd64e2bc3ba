"""``bot download``: closed klines through ccxt into OHLCV CSV files, with a rich progress bar per symbol.

The files (``DIR/BTCUSDT-1h.csv[.gz]``) are the format ``bot replay-server --data``,
``bot train`` and ``bot evaluate`` read.  A rerun resumes each file where it ends.
See :mod:`bot.data.download` for pagination, resume and rate limits.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from bot.cli.progress import Bars
from bot.errors import ConfigError, DataError, FeedError


class _SymbolBars(Bars):
    """One rich progress bar per symbol: bar periods done / expected, with the time remaining."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("bars"), TimeRemainingColumn())
        self.tasks: dict[str, Any] = {}

    def __call__(self, symbol: str, done: int, total: int) -> None:
        if symbol not in self.tasks:
            self.tasks[symbol] = self.progress.add_task(symbol, total=total, completed=done)
        self.progress.update(self.tasks[symbol], completed=done, total=total)


async def _download(args: argparse.Namespace) -> int:
    from bot.data.download import DownloadRequest, download, open_download_exchange
    from bot.data.pages import fmt_ms, parse_when

    request = DownloadRequest(
        symbols=tuple(args.symbols), timeframe=args.timeframe, since_ms=parse_when(args.since, "--since"),
        until_ms=parse_when(args.until, "--until") if args.until else None, out_dir=args.out, gzip=args.gzip)
    async with open_download_exchange(args.exchange, args.rest_url, args.timeout) as exchange:
        with _SymbolBars() as bars:
            results = await download(exchange, request, progress=bars)
    for r in results:
        if r.last_ms is None:
            print(f"{r.symbol}: no closed bars from {fmt_ms(request.since_ms)} to {fmt_ms(r.wanted_last_ms)}; "
                  "no file written")
            continue
        resumed = f", resumed after {fmt_ms(r.resumed_after_ms)}" if r.resumed_after_ms is not None else ""
        print(f"{r.symbol}: {r.path} holds {r.rows} bars {fmt_ms(r.first_ms or 0)} .. {fmt_ms(r.last_ms)} "
              f"({r.new_rows} new{resumed})")
        if r.last_ms < r.wanted_last_ms:
            print(f"  the exchange has no bars after {fmt_ms(r.last_ms)} (asked up to {fmt_ms(r.wanted_last_ms)})")
        if r.gaps:
            print(f"  {len(r.gaps)} gap(s) in the exchange's history, {sum(g.bars for g in r.gaps)} bars, "
                  "kept as they are:")
            for g in r.gaps[:10]:
                print(f"    {g}")
            if len(r.gaps) > 10:
                print(f"    … and {len(r.gaps) - 10} more")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from bot.cli.logs import setup_logging

    setup_logging("INFO" if args.verbose else "WARNING")
    if args.out.exists() and not args.out.is_dir():   # checked before the exchange is asked for anything
        raise ConfigError(f"--out {args.out}: is a file; give the folder the CSV files go to")
    try:
        return asyncio.run(_download(args))
    except FeedError as exc:  # the exchange could not be reached after the retries: no usable data
        raise DataError(f"download stopped (the files hold every bar fetched so far; rerun to resume): "
                        f"{exc}") from exc


def add_parsers(sub: Any) -> None:
    """Add ``download`` to the ``bot`` sub-command parsers."""
    d = sub.add_parser("download", help="download closed klines through ccxt into OHLCV CSV files (resumable)")
    d.add_argument("--exchange", default="binance",
                   help="ccxt exchange id (default binance; others through fetch_ohlcv)")
    d.add_argument("--symbols", nargs="+", required=True, help="markets, e.g. BTC/USDT ETH/USDT")
    d.add_argument("--timeframe", default="1h", help="bar length (default 1h)")
    d.add_argument("--since", required=True, help="first bar: YYYY-MM-DD (UTC) or epoch ms; an existing file "
                   "is resumed from its last bar instead")
    d.add_argument("--until", default=None, help="end, exclusive: YYYY-MM-DD (UTC) or epoch ms (default and at "
                   "most: up to the last closed bar)")
    d.add_argument("--out", type=Path, default=Path("data"), help="folder of the CSV files (default data/)")
    d.add_argument("--gzip", action="store_true", help="write BTCUSDT-1h.csv.gz instead of .csv")
    d.add_argument("--rest-url", default=None, help="REST base URL of another server speaking the exchange's "
                   "API, e.g. a bot replay-server's http://127.0.0.1:8765/api/v3")
    d.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    d.add_argument("-v", "--verbose", action="store_true", help="log every retry and merge (INFO)")
    d.set_defaults(func=cmd_download)
