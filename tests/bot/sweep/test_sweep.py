"""``bot sweep`` end to end on a generated market: runs, resumption, the choice, the held-out fold, Ray."""

from __future__ import annotations

import csv
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bot.analytics.performance import sharpe
from bot.analytics.tearsheet import daily_returns
from bot.cli import main
from bot.sweep.driver import run_sweep
from bot.sweep.report import load_rows
from bot.sweep.runs import grid_points, validation_runs
from bot.sweep.spec import data_files, load_spec
from bot.sweep.store import SweepStore
from bot.sweep.worker import RunResult, execute

DAY = 86_400_000


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_daily_returns_by_hand() -> None:
    """Marks at 10:00 and 23:00 of day 0 and 05:00 of day 2: the last of each day against the one before,
    the first day against the starting cash."""
    bar_ms = np.array([10 * 3_600_000, 23 * 3_600_000, 2 * DAY + 5 * 3_600_000])
    days, r = daily_returns(bar_ms, np.array([101.0, 102.0, 96.9]), 100.0)
    assert days.tolist() == [0, 2 * DAY]
    assert r == pytest.approx([0.02, -0.05])
    assert sharpe(r, 365) == pytest.approx(np.mean(r) / np.std(r, ddof=1) * np.sqrt(365))
    assert sharpe(np.zeros(5), 365) is None   # a flat curve: the run's figure is 0


def test_a_sweep_chooses_on_validation_and_runs_the_held_out_fold_once(
        spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = spec_dir / "out"
    assert main(["sweep", str(spec_dir / "spec.toml"), "--sequential", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 configurations x 2 validation folds x 2 symbol sets = 8 runs" in text
    assert "10 runs done now, 0 found finished" in text
    for words in ("chosen on validation folds only", "deflated Sharpe ratio", "probability of backtest overfitting",
                  "held-out f3 BTC+ETH", "held-out f3 SOL"):
        assert words in text
    rows = _table(out / "results.csv")
    assert len(rows) == 10 and all(r["ok"] == "1" for r in rows)
    held = [r for r in rows if r["test"] == "1"]
    assert {r["fold"] for r in held} == {"f3"} and len({r["config_id"] for r in held}) == 1
    # The chosen configuration is the best on the validation folds, never looking at f3.
    val = load_rows(out / "sweep.sqlite")
    from bot.sweep.report import analyse

    a = analyse(val)
    assert a.chosen is not None and held[0]["config_id"] == a.chosen.config_id == a.configs[0].config_id
    assert "risk.gate.long_entry_strength" in rows[0]                     # one column per swept key
    # Only the held-out runs keep their trade logs (keep_trade_logs = false); bot report reads them.
    logs = sorted(p.name for p in (out / "runs").glob("*.sqlite"))
    assert logs == sorted(f"{r['run_id']}.sqlite" for r in held)
    assert main(["report", "--db", str(out / "runs" / logs[0]), "--run", logs[0][:-7]]) == 0
    # A rerun finds every run finished and prints the same table.
    capsys.readouterr()
    assert main(["sweep", str(spec_dir / "spec.toml"), "--sequential", "--out", str(out)]) == 0
    assert "0 runs done now, 10 found finished" in capsys.readouterr().out
    assert _table(out / "results.csv") == rows
    # bot report recognises the results file.
    assert main(["report", "--db", str(out / "sweep.sqlite")]) == 0
    assert "chosen on validation folds only: " + a.chosen.config_id in capsys.readouterr().out
    check_served(out / "sweep.sqlite", a.chosen.config_id, [c.config_id for c in a.configs], held)


def check_served(db: Path, chosen: str, ranked: list[str], held: list[dict[str, str]]) -> None:
    """``bot serve --db sweep.sqlite`` (a real process and port) shows the sweep: page, JSON and figure."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--db", str(db), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(url + "/", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=30)[0]
                time.sleep(0.2)
        assert page.status_code == 200
        assert "Parameter sweep" in page.text and f"{chosen} (" in page.text and 'id="held-out"' in page.text
        got = httpx.get(url + "/api/sweep", timeout=30).json()
        assert got["analysis"]["chosen"] == chosen
        assert [c["config_id"] for c in got["analysis"]["configs"]] == ranked
        assert len(got["runs"]) == 10 and "daily_json" not in got["runs"][0]
        assert {(r["fold"], r["symbols"]) for r in got["analysis"]["held_out"]} == \
            {(r["fold"], r["symbols"]) for r in held}
        fig = httpx.get(url + "/api/sweep/figures/sharpe", timeout=30).json()
        assert fig["data"][0]["x"] == ranked
        assert httpx.get(url + "/api/sweep/figures/nope", timeout=30).status_code == 404
    finally:
        proc.terminate()
        proc.communicate(timeout=30)   # reaps it and closes its pipe


def test_an_interrupted_sweep_resumes_with_the_runs_left(spec_dir: Path) -> None:
    """Runs finished before the stop are not run again; a failed run is retried."""
    spec = load_spec(spec_dir / "spec.toml")
    out = spec_dir / "out"
    out.mkdir()
    runs = validation_runs(spec, grid_points(spec), data_files(spec))
    with SweepStore(out / "sweep.sqlite") as store:
        for run in runs[:3]:
            store.record(run, execute(run, str(out), False))
        store.record(runs[3], RunResult(runs[3].run_id, False, "DataError: a disk went away"))
    seen: list[str] = []
    outcome = run_sweep(spec, out, use_ray=False, progress=lambda done, total, run, result: seen.append(run.run_id))
    assert seen[:5] == [r.run_id for r in runs[3:]] and len(seen) == 5 + 2      # 5 validation left, 2 held out
    assert outcome.ran == 7 and outcome.skipped == 3 and not outcome.analysis.failed
    fresh = spec_dir / "fresh"
    run_sweep(spec, fresh, use_ray=False)
    assert _table(out / "results.csv") == _table(fresh / "results.csv")


def test_a_run_failing_keeps_the_held_out_fold_closed(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a hole in the grid there is no honest choice: no held-out run, exit 3 naming the failures."""
    out = spec_dir / "out"
    out.mkdir()
    (out / "runs").mkdir()
    spec = load_spec(spec_dir / "spec.toml")
    first = validation_runs(spec, grid_points(spec), data_files(spec))[0]
    (out / "runs" / f"{first.run_id}.sqlite").write_text("not a trade log")   # the run cannot use its log
    assert main(["sweep", str(spec_dir / "spec.toml"), "--sequential", "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert "1 run(s) failed" in captured.err and "held-out folds: not run yet" in captured.out
    with sqlite3.connect(out / "sweep.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM sweep_runs WHERE test = 1").fetchone()[0] == 0


@pytest.mark.slow
def test_ray_runs_give_the_sequential_results(spec_dir: Path) -> None:
    """A local Ray of one CPU (start-up ~4 s): the same rows as the sequential sweep."""
    ray = pytest.importorskip("ray")
    from bot.sweep.schedule import start_ray

    spec = load_spec(spec_dir / "spec.toml")
    start_ray(None, 1)
    try:
        run_sweep(spec, spec_dir / "ray", use_ray=True)
    finally:
        ray.shutdown()
    run_sweep(spec, spec_dir / "seq", use_ray=False)
    assert _table(spec_dir / "ray" / "results.csv") == _table(spec_dir / "seq" / "results.csv")
