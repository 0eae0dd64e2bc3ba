"""A sweep spec: folds, grid and symbol sets parsed; every mistake named by its key, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.sweep.runs import grid_points, symbol_set_id, validation_runs
from bot.sweep.spec import data_files, load_spec, parse_spec

DAY = 86_400_000


def test_a_spec_is_parsed_into_folds_grid_and_symbol_sets(spec_dir: Path) -> None:
    spec = load_spec(spec_dir / "spec.toml")
    assert [f.name for f in spec.folds] == ["f1", "f2", "f3"]
    assert [f.test for f in spec.folds] == [False, False, True]
    assert spec.folds[0].start_ms == 1_704_067_200_000 + 3 * DAY                # 2024-01-04
    assert spec.folds[-1].end_ms == 1_704_067_200_000 + 21 * DAY                # 2024-01-22, exclusive
    assert all(a.end_ms == b.start_ms for a, b in zip(spec.folds, spec.folds[1:]))
    assert all(f.start_ms % 3_600_000 == 0 for f in spec.folds)                 # on whole hours
    assert spec.grid == (("risk.gate.long_entry_strength", (0.05, 0.2)),)
    assert spec.base.risk.gate.rule == "strength"                               # the base config was read
    assert spec.symbol_sets == (("BTC/USDT", "ETH/USDT"), ("SOL/USDT",))
    assert set(data_files(spec)) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}


def test_run_ids_are_stable_and_follow_the_base_config(spec_dir: Path) -> None:
    spec = load_spec(spec_dir / "spec.toml")
    files = data_files(spec)
    a = [r.run_id for r in validation_runs(spec, grid_points(spec), files)]
    assert a == [r.run_id for r in validation_runs(load_spec(spec_dir / "spec.toml"), grid_points(spec), files)]
    assert len(a) == len(set(a)) == 2 * 2 * 2
    assert symbol_set_id(("BTC/USDT", "ETH/USDT")) == "BTC+ETH"
    (spec_dir / "base.toml").write_text((spec_dir / "base.toml").read_text() + "[paper]\ntaker_fee_bps = 5\n")
    changed = load_spec(spec_dir / "spec.toml")
    assert not {p.config_id for p in grid_points(changed)} & {p.config_id for p in grid_points(spec)}


def test_random_search_draws_distinct_points_with_its_seed(spec_dir: Path) -> None:
    text = (spec_dir / "spec.toml").read_text().replace('[grid]\n', '[grid]\n"risk.gate.short_entry_strength" = [0.1, 0.2, 0.3]\n').replace(
        '[sweep]\n', '[sweep]\nsearch = "random"\nsamples = 4\nseed = 3\n')
    spec = parse_spec(text, "s.toml", spec_dir)
    points = grid_points(spec)
    assert len(points) == len({p.config_id for p in points}) == 4
    assert [p.config_id for p in points] == [p.config_id for p in grid_points(parse_spec(text, "s.toml", spec_dir))]


@pytest.mark.parametrize("edit, key, says", [
    (("[grid]\n", "[grid]\n\"risk.gate.long_entry_margn\" = [1.0]\n"), "grid.risk.gate.long_entry_margn",
     "unknown config key 'risk.gate.long_entry_margn'"),
    (("[0.05, 0.2]", "[0.05, -1.0]"), "grid.risk.gate.long_entry_strength", "out of range"),
    (("[0.05, 0.2]", "[0.05, 0.05]"), "grid.risk.gate.long_entry_strength", "listed twice"),
    (("[0.05, 0.2]", "[]"), "grid.risk.gate.long_entry_strength", "non-empty list"),
    (("[0.05, 0.2]", "[\"high\"]"), "grid.risk.gate.long_entry_strength", "expected a number"),
    (("[grid]\n", "[grid]\n\"run.db\" = [\"x\"]\n"), "grid.run.db", "sweep sets this itself"),
    (("count = 3", "count = 1"), "folds.count", "out of range"),
    (("from = 2024-01-04\n", ""), "folds.from", "required"),
    (("test = 1", "test = 3"), "folds.test", "at least one validation fold"),
    (("to = \"2024-01-22\"", "to = \"2024-13-22\""), "folds.to", "not a date"),
    (("to = \"2024-01-22\"", "to = \"2024-01-01\""), "folds.to", "must be after"),
    (("[\"SOL/USDT\"]]", "[\"SOL-USDT\"]]"), "sweep.symbol_sets[1]", "unknown symbol"),
    (("[sweep]\n", "[sweep]\nsearch = \"bayes\"\n"), "sweep.search", "allowed values: grid, random"),
    (("[sweep]\n", "[sweep]\nsearch = \"random\"\n"), "sweep.samples", "random search needs samples"),
    (("[sweep]\n", "[sweep]\nworkers = 3\n"), "sweep.workers", "unknown key"),
    (("[folds]\n", "[fold]\nx = 1\n[folds]\n"), "fold", "unknown table"),
    (("data = [\"data\"]", "data = 3"), "sweep.data", "expected a path"),
])
def test_a_bad_spec_names_its_key(spec_dir: Path, edit: tuple[str, str], key: str, says: str) -> None:
    spec = (spec_dir / "spec.toml").read_text()
    assert edit[0] in spec
    with pytest.raises(ConfigError) as exc:
        parse_spec(spec.replace(edit[0], edit[1], 1), "spec.toml", spec_dir)
    assert f"key '{key}'" in str(exc.value) and says in str(exc.value)


def test_the_command_answers_a_bad_spec_with_one_line_and_exit_2(spec_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    spec = (spec_dir / "spec.toml").read_text()
    (spec_dir / "bad.toml").write_text(spec.replace("count = 3", "count = \"three\""))
    assert main(["sweep", str(spec_dir / "bad.toml"), "--sequential", "--out", str(spec_dir / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'folds.count'" in err and "Traceback" not in err
    (spec_dir / "nodata.toml").write_text(spec.replace('"SOL/USDT"]]', '"DOGE/USDT"]]'))
    assert main(["sweep", str(spec_dir / "nodata.toml"), "--sequential", "--out", str(spec_dir / "o")]) == 3
    assert "no 1h CSV for DOGE/USDT" in capsys.readouterr().err
    assert not (spec_dir / "o").exists()          # nothing written before the spec and data are checked
    (spec_dir / "x.toml").write_text("[sweep\n")
    assert main(["sweep", str(spec_dir / "x.toml"), "--sequential"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
