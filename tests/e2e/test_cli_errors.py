"""Every user-reachable failure of ``python -m bot``: a documented exit code and one line naming what was
wrong on stderr, never a traceback; checks of arguments and output paths come before the work.

Each case runs the real command line in a subprocess from the repository root.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Settings
from bot.feeds.replay.csvdata import write_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import run_backtest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTED_EXIT_CODES = {0, 2, 3, 4, 130}   # bot/cli/__init__.py's docstring and the README's "Exit codes"
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
SECRET = "hunter2-s3cret"
PREFIX = {2: "configuration error: ", 3: ("data error: ", "file error: ")}
AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Files:
    root: Path
    log: Path          # a trade log with run 'bt'
    data: Path         # CSV files of SYMBOLS
    foreign: Path      # another program's SQLite file
    empty: Path        # a 0-byte file
    folder: Path       # a folder
    readonly: Path     # an existing file without write permission


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("cli")
    market = generate_market(SYMBOLS, 120, 1_704_067_200_000, seed=8)
    data = root / "data"
    data.mkdir()
    for s, series in market.items():
        write_ohlcv_csv(data / f"{s.replace('/', '')}-1h.csv", series)
    log = root / "log.sqlite"
    settings = Settings().with_overrides(run={"db": str(log), "id": "bt"}, market={"symbols": SYMBOLS, "window": 64})
    asyncio.run(run_backtest(settings, market, commit_every=10))
    foreign = root / "notes.sqlite"
    with closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE notes (x)")
    (root / "empty.sqlite").touch()
    (root / "folder").mkdir()
    readonly = root / "readonly.html"
    readonly.write_text("old")
    readonly.chmod(0o444)
    (root / "bad.toml").write_text("[run]\nbogus = 1\n")
    (root / "secret.toml").write_text(f'[feed]\nrest_url = "http://bob:{SECRET}@127.0.0.1:9/api/v3"\n')
    return Files(root, log, data, foreign, root / "empty.sqlite", root / "folder", readonly)


def bot(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def case(name: str, args: str, code: int, words: str, *marks: pytest.MarkDecorator) -> object:
    """A command line with {placeholders} for :class:`Files`, its exit code, and words its error line holds."""
    return pytest.param(args, code, words, id=name, marks=marks)


ROOT_SKIP = pytest.mark.skipif(AS_ROOT, reason="root writes files whatever their mode")

CASES = [
    case("report-html-missing-folder", "report --db {log} --html {root}/nope/r.html", 2, "--html"),
    case("report-png-under-a-file", "report --db {log} --png {log}/r.png", 2, "is not a folder"),
    case("report-csv-is-a-folder", "report --db {log} --csv {folder}", 2, "is a folder"),
    case("report-unknown-run", "report --db {log} --run nope", 3, "no run 'nope'"),
    case("report-no-db", "report --db {root}/missing.sqlite", 3, "missing.sqlite"),
    case("report-foreign-db", "report --db {foreign}", 3, "not a trade log"),
    case("report-db-is-a-folder", "report --db {folder}", 3, "folder"),
    case("status-no-db", "status --db {root}/missing.sqlite", 3, "missing.sqlite"),
    case("status-empty-file", "status --db {empty}", 3, "not a trade log"),
    case("status-unknown-run", "status --db {log} --run nope", 3, "no run 'nope'"),
    case("backtest-bad-date", "backtest --data {data} --symbols BTC/USDT --from 2024-13-01 --db {root}/b1.sqlite",
     2, "2024-13-01"),
    case("backtest-to-before-from", "backtest --data {data} --symbols BTC/USDT --from 2024-03-01 --to 2024-02-01 "
     "--db {root}/b2.sqlite", 2, "--to"),
    case("backtest-db-missing-folder", "backtest --data {data} --symbols BTC/USDT --db {root}/nope/b.sqlite", 3,
     "does not exist"),
    case("backtest-db-is-a-folder", "backtest --data {data} --symbols BTC/USDT --db {folder}", 3, "folder"),
    case("backtest-db-foreign", "backtest --data {data} --symbols BTC/USDT --db {foreign}", 3, "not a trade log"),
    case("backtest-db-empty-file", "backtest --data {data} --symbols BTC/USDT --db {empty}", 3, "0-byte"),
    case("backtest-no-data", "backtest --data {root}/nodata --db {root}/b3.sqlite", 3, "nodata"),
    case("backtest-missing-config", "backtest --data {data} --symbols BTC/USDT --config {root}/missing.toml "
     "--db {root}/b4.sqlite", 2, "missing.toml"),
    case("run-missing-config", "run --config {root}/missing.toml", 2, "missing.toml"),
    case("run-bad-config", "run --config {root}/bad.toml", 2, "run.bogus"),
    case("run-credentials-in-url", "run --config {root}/secret.toml", 2, "feed.rest_url"),
    case("run-db-is-a-folder", "run --db {folder}", 3, "folder"),
    case("run-db-missing-folder", "run --db {root}/nope/t.sqlite", 3, "does not exist"),
    case("run-db-empty-file", "run --db {empty}", 3, "0-byte"),
    case("run-db-foreign", "run --db {foreign}", 3, "not a trade log"),
    case("demo-db-missing-folder", "demo --db {root}/nope/d.sqlite --bars 2", 3, "does not exist"),
    case("demo-no-bars", "demo --db {root}/d.sqlite --bars 0", 2, "--bars"),
    case("train-out-under-a-file", "train --data {data} --symbols BTC/USDT --out {log}/m.pt", 2, "--out"),
    case("train-bad-date", "train --data {data} --symbols BTC/USDT --to 2024-02-30", 2, "2024-02-30"),
    case("evaluate-json-missing-folder", "evaluate --data {data} --json {root}/nope/s.json", 2, "--json"),
    case("download-bad-date", "download --symbols BTC/USDT --since 2024-99-01 --out {root}/dl", 2, "--since"),
    case("download-out-is-a-file", "download --symbols BTC/USDT --since 2024-01-01 --out {log}", 2, "--out"),
    case("replay-server-bad-speed", "replay-server --speed 0", 2, "--speed"),
    case("sweep-missing-spec", "sweep {root}/missing.toml --sequential", 2, "missing.toml"),
    case("sweep-bad-spec", "sweep {root}/bad.toml --sequential", 2, "key 'run'"),
    case("sweep-no-workers", "sweep {root}/bad.toml --workers 0", 2, "--workers"),
    case("report-html-unwritable-file", "report --db {log} --html {readonly}", 2, "not writable", ROOT_SKIP),
]


@pytest.mark.parametrize(("args", "code", "words"), CASES)
def test_a_failure_is_one_line_and_a_documented_exit_code(files: Files, args: str, code: int, words: str) -> None:
    argv = args.format(**{k: str(v) for k, v in vars(files).items()}).split()
    foreign_before = files.foreign.read_bytes()
    done = bot(*argv)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in DOCUMENTED_EXIT_CODES, (done.returncode, done.stderr)
    assert done.returncode == code, (done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(PREFIX[code]) and words in last, done.stderr
    assert done.stdout == "", "checks come before the work: nothing is printed before the error"
    assert SECRET not in done.stderr + done.stdout
    assert files.foreign.read_bytes() == foreign_before
    assert files.empty.stat().st_size == 0 and list(files.folder.iterdir()) == []
