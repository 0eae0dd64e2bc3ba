"""Every subcommand's --help: a description, an example, a help line on every option; --version; one run flag."""

from __future__ import annotations

import argparse

import pytest

from bot import __version__
from bot.cli import build_parser, main
from bot.cli.help import EXAMPLES, subparsers

SUBCOMMANDS = subparsers(build_parser())


def test_every_subcommand_is_covered() -> None:
    assert set(SUBCOMMANDS) == set(EXAMPLES)
    assert {"run", "demo", "replay-server", "report", "status", "serve", "train", "evaluate", "download",
            "backtest"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_help_has_a_description_an_example_and_a_line_per_option(name: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    parser = SUBCOMMANDS[name]
    assert parser.description and parser.description.strip()
    missing = [a.option_strings or a.dest for a in parser._actions
               if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS)]
    assert not missing, f"bot {name}: options without a help line: {missing}"
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: bot {name}" in out and "example:\n  bot " in out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_one_name_for_the_run_flag(name: str) -> None:
    flags = {s for a in SUBCOMMANDS[name]._actions for s in a.option_strings}
    if "--run-id" in flags:   # the old spelling survives only as an alias of --run
        assert "--run" in flags
        run = next(a for a in SUBCOMMANDS[name]._actions if "--run" in a.option_strings)
        assert "--run-id" in run.option_strings


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"bot {__version__}"


def test_run_id_is_an_alias_of_run() -> None:
    args = build_parser().parse_args(["demo", "--run-id", "x"])
    assert args.run_id == "x" and build_parser().parse_args(["demo", "--run", "y"]).run_id == "y"
