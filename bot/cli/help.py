"""The command line's help, made uniform: a description and an example on every subcommand, ``--version``.

Each subcommand module declares its own options; :func:`finish_help` runs once the parser is built and
gives every subcommand the description (its one-line ``help`` when it declares none) and the example
below as the epilog.  ``tests/bot/cli/test_cli_help.py`` walks every ``--help`` and checks each option has
a help line.
"""

from __future__ import annotations

import argparse

# One or two typical invocations per subcommand, shown under "example:" in its --help.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": ("bot run --config config.toml", "bot run --config config.toml --max-bars 24 --db trial.sqlite"),
    "demo": ("bot demo --bars 200 --db demo.sqlite", "bot report --db demo.sqlite --html demo.html"),
    "replay-server": ("bot replay-server --data data/BTCUSDT-1h.csv.gz data/ETHUSDT-1h.csv.gz --speed 3600",),
    "report": ("bot report --db trades.sqlite --run paper --html report.html --csv trades.csv",),
    "status": ("bot status --db trades.sqlite --run paper",),
    "serve": ("bot serve --db demo.sqlite    # then open http://127.0.0.1:8080/",),
    "train": ("bot train --data data/ --model cnn_gru --from 2023-01-01 --to 2024-01-01",),
    "evaluate": ("bot evaluate --data data/ --models knn lstm --folds 3 --json scores.json",),
    "download": ("bot download --symbols BTC/USDT ETH/USDT --since 2024-01-01 --out data/ --gzip",),
    "backtest": ("bot backtest --data data/ --from 2024-01-01 --to 2024-07-01 --db backtest.sqlite --run h1",
                 "bot backtest --data data/ --walk-forward --model cnn_gru --retrain-every 720"),
    "sweep": ("bot sweep sweep.toml --out sweep-2025    # a local Ray; --address HEAD:6379 for a cluster",
              "bot report --db sweep-2025/sweep.sqlite"),
}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by name."""
    for action in parser._actions:   # argparse keeps them only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line ``help`` (what ``bot --help`` lists)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def finish_help(parser: argparse.ArgumentParser, version: str) -> None:
    """Add ``--version``; give every subcommand a description and its example."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}",
                        help="print the version and exit")
    helps = subcommand_help(parser)
    for name, sub in subparsers(parser).items():
        if not sub.description:
            line = helps.get(name, "")
            sub.description = line[:1].upper() + line[1:] + ("." if line and not line.endswith(".") else "")
        examples = EXAMPLES.get(name, ())
        if examples and not sub.epilog:
            sub.epilog = "example:\n" + "\n".join(f"  {e}" for e in examples)
            sub.formatter_class = argparse.RawDescriptionHelpFormatter


__all__ = ["EXAMPLES", "finish_help", "subparsers", "subcommand_help"]
