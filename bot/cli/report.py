"""The shell of ``bot report``: arguments, then load → review → text and files (HTML: :mod:`bot.web.report`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from bot.errors import DataError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db``, ``--run`` and the optional outputs."""
    parser.add_argument("--db", required=True, help="SQLite trade log")
    parser.add_argument("--run", default=None, help="run id (default: the most recently active run)")
    parser.add_argument("--html", default=None, metavar="OUT.html",
                        help="write one self-contained interactive HTML file: the dashboard's views and the tearsheet")
    parser.add_argument("--png", default=None, metavar="OUT.png", help="write the equity/drawdown figure")
    parser.add_argument("--csv", default=None, metavar="TRADES.csv",
                        help="write one row per fill here and one per round trip to TRADES-round-trips.csv")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the report and write the files asked for; raises DataError on an unusable trade log and
    ConfigError (before reading anything) on an output path that cannot be written."""
    from bot.cli.outputs import check_output_file
    from bot.reporting.export import trips_path, write_csv, write_png
    from bot.reporting.review import build_review, format_full
    from bot.reporting.tearsheet import build_tearsheet, format_tearsheet
    from bot.reporting.tradelog import load_trade_log

    for option, path in (("--html", args.html), ("--png", args.png), ("--csv", args.csv)):
        if path:
            check_output_file(path, option)
    if args.csv:
        check_output_file(trips_path(args.csv), "--csv (round trips)")
    out = out or sys.stdout
    review = build_review(load_trade_log(args.db, args.run))
    out.write(format_full(review))
    if review.perf is not None:
        out.write(format_tearsheet(build_tearsheet(review)))
    if args.html:
        from bot.web.report import write_report

        out.write(f"HTML report: {write_report(args.db, review.log.report.run_id, args.html, review)}\n")
    if args.png:
        out.write(f"equity/drawdown figure: {write_png(review, args.png)}\n")
    if args.csv:
        fills, trips = write_csv(review, args.csv)
        out.write(f"fills: {fills}; round trips: {trips}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bot report``: print the report (and write its files), or the reason there is none."""
    from bot.reporting import run_report

    parser = argparse.ArgumentParser(prog="bot report", description=run_report.__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
