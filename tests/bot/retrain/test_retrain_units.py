"""Retraining's pure parts and its refusals: the schedule, the job's ranges, the checkpoint folder, a candidate
refused at the swap (the serving model stays), the models table's swap in one bar's transaction."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.retrain import checkpoints
from bot.retrain.job import RetrainJob, plan_ranges
from bot.retrain.keeper import ModelKeeper, check_folder
from bot.retrain.schedule import fresh_alarms, retrain_due
from bot.store.models import ModelVersion, insert_statement, swap_statements
from bot.store.trade_store import TradeStore
from strategies.baseline import EwmaMomentumPredictor
from strategies.events import Forecast
from strategies.settings import RetrainSettings

H = 3_600_000
T = 1_704_067_200_000


def test_retrain_is_due_on_schedule_on_an_alarm_and_never_while_one_runs() -> None:
    assert retrain_due(T + 9 * H, H, T, 10, True, [], False) is None
    assert retrain_due(T + 10 * H, H, T, 10, True, [], False).kind == "schedule"
    assert retrain_due(T + 3 * H, H, T, 10, True, ["ETH/USDT"], False).kind == "alarm"
    assert retrain_due(T + 3 * H, H, T, 10, False, ["ETH/USDT"], False) is None
    assert retrain_due(T + 30 * H, H, T, 0, False, [], False) is None          # 0: alarms only
    assert retrain_due(T + 30 * H, H, T, 10, True, ["ETH/USDT"], True) is None  # busy


def test_only_an_alarm_fired_at_this_bar_counts() -> None:
    def f(sym: str, alarm: str) -> Forecast:
        return Forecast(sym, T, 0.0, 0.01, "m", alarm=alarm)

    fs = [f("BTC/USDT", f"since bar {T - H}: NLL"), f("ETH/USDT", f"since bar {T}: PIT"), f("XRP/USDT", "")]
    assert fresh_alarms(T, fs) == ["ETH/USDT"]


@pytest.mark.parametrize("window", ["rolling", "expanding"])
def test_the_candidate_never_trains_on_its_held_out_bars(window: str) -> None:
    r = RetrainSettings(window=window, window_bars=100, holdout_bars=20)
    data_from, train_from, holdout_from, holdout_to = plan_ranges(r, T, H, T - 5000 * H, 80)
    assert holdout_to == T + H and holdout_from == T - 19 * H          # outcomes of the last 20 bars
    assert train_from == (T - 119 * H if window == "rolling" else T - 5000 * H)
    assert data_from == train_from - 80 * H


def test_a_job_round_trips_through_json() -> None:
    job = RetrainJob("r", 2, "cnn_gru", "alarm", T, T + 2 * H, T - 99 * H, T - 9 * H, T + H, T - 200 * H, "db",
                     Settings().to_json(), "", "baseline", "v2.pt", "v2.result.json")
    assert RetrainJob.from_json(job.to_json()) == job
    assert job.summary()["train"] == [T - 99 * H, T - 9 * H]


def test_retention_keeps_the_newest_and_the_protected(tmp_path: Path) -> None:
    for v in range(1, 8):
        for suffix in (".pt", ".job.json", ".result.json", ".log"):
            (tmp_path / f"v{v}{suffix}").write_text("x")
    (tmp_path / "v8.pt.abc.tmp").write_text("partial")
    (tmp_path / "notes.txt").write_text("mine")
    assert checkpoints.prune(tmp_path, 3, protect={2}) == [1, 3, 4]
    assert checkpoints.remove_partials(tmp_path) == [tmp_path / "v8.pt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["v2.pt", "v5.pt", "v6.pt", "v7.pt"]
    assert (tmp_path / "notes.txt").exists()


def test_a_checkpoint_that_is_damaged_foreign_or_mismatched_is_refused_with_the_reason(tmp_path: Path) -> None:
    s = Settings()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read"):
        checkpoints.load_verified(bad, "", s, "cnn_gru", "cpu")
    with pytest.raises(ConfigError, match="SHA-256"):
        checkpoints.load_verified(bad, "0" * 64, s, "cnn_gru", "cpu")
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoints.load_verified(tmp_path / "gone.pt", "", s, "cnn_gru", "cpu")


def test_retrain_config_names_the_key_when_it_cannot_work() -> None:
    with pytest.raises(ConfigError, match=r"'model.retrain.model'.*baseline"):
        Settings().with_overrides(model={"retrain": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"'model.retrain.interval_bars'"):
        Settings().with_overrides(model={"name": "cnn_gru", "retrain": {"enabled": True, "interval_bars": 0,
                                                                          "on_alarm": False}})
    with pytest.raises(ConfigError, match=r"'model.retrain.window'.*allowed values: 'rolling', 'expanding'"):
        Settings().with_overrides(model={"retrain": {"window": "sliding"}})


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def cnn_gru_retrains(db: Path) -> Settings:
    return Settings().with_overrides(run={"db": str(db), "id": "r"},
                                     model={"retrain": {"enabled": True, "model": "cnn_gru"}})


def alarm_job(settings: Settings, db: Path, checkpoint: str, result: str) -> RetrainJob:
    """Version 2 of run r, started by an alarm after bar T and due at T + 2H, serving the baseline."""
    return RetrainJob("r", 2, "cnn_gru", "alarm", T, T + 2 * H, T - 99 * H, T - 9 * H, T + H, T - 200 * H,
                      str(db), settings.to_json(), "", "baseline", checkpoint, result)


@pytest.mark.asyncio
async def test_a_candidate_refused_at_the_swap_leaves_the_serving_model(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    settings = cnn_gru_retrains(db)
    async with await TradeStore.open(db) as store:
        await store.begin_run("r", "paper", settings.to_json(), settings.config_hash, "t", 0)
        keeper = await ModelKeeper.open(settings, store, "r", EwmaMomentumPredictor(), ())
        assert keeper.predictor.version == 1
        bad = keeper.folder / "v2.pt"
        bad.write_bytes(b"damaged")
        job = alarm_job(settings, db, str(bad), str(keeper.folder / "v2.result.json"))
        await store.record_model("r", ModelVersion(2, "cnn_gru", "accepted", "alarm", T, T + 2 * H))
        keeper.pending, keeper.verdict = job, {"status": "accepted", "checkpoint": str(bad), "sha256": ""}
        await keeper.bar_begins(T + H)                    # not due yet
        assert keeper.pending is job
        await keeper.bar_begins(T + 2 * H)
        assert keeper.predictor.version == 1 and keeper.pending is None
        version, stmts = keeper.bar_decided(T + 2 * H, [])
        assert version == 1 and len(stmts) == 1           # no swap: only the serving version's bar
    status, reason = rows(db, "SELECT status, reason FROM models WHERE version = 2")[0]
    assert status == "rejected" and reason.startswith("refused at the swap: model checkpoint") and "cannot be read" \
        in reason
    assert rows(db, "SELECT version FROM models WHERE status = 'serving'") == [(1,)]


@pytest.mark.asyncio
async def test_the_serving_flag_moves_with_the_bar_or_not_at_all(tmp_path: Path) -> None:
    from bot.events import EquityMarked
    from bot.store.rows import BarRecord

    db = tmp_path / "t.sqlite"
    s = Settings().with_overrides(run={"db": str(db), "id": "r"})
    async with await TradeStore.open(db) as store:
        await store.begin_run("r", "paper", s.to_json(), s.config_hash, "t", 0)
        await store.record_model("r", ModelVersion(1, "baseline", "serving", "config"))
        await store.record_model("r", ModelVersion(2, "cnn_gru", "accepted", "alarm"))
        bar = BarRecord(T, (), (), (), (), (), (), EquityMarked(T, s.paper.initial_cash, s.paper.initial_cash, ()),
                        model_version=2, model_rows=(*swap_statements("r", T, H, 2),
                                                     ("INSERT INTO nowhere VALUES (1)", ())))
        with pytest.raises(Exception, match="nowhere"):
            await store.write_bar("r", bar)              # a failing bar: neither the bar nor the swap is there
        assert [(m.version, m.status) for m in await store.models("r")] == [(1, "serving"), (2, "accepted")]
        ok = BarRecord(T, (), (), (), (), (), (), bar.equity, model_version=2,
                       model_rows=(*swap_statements("r", T, H, 2), insert_statement("r", ModelVersion(
                           3, "cnn_gru", "training", "schedule", T, T + H))))
        assert await store.write_bar("r", ok)
        got = [(m.version, m.status, m.first_bar_ms, m.last_bar_ms) for m in await store.models("r")]
    assert got == [(1, "retired", None, T - H), (2, "serving", T, T), (3, "training", None, None)]


def test_a_version_3_log_is_migrated_to_4(tmp_path: Path) -> None:
    from bot.store.schema import SCHEMA

    db = tmp_path / "v3.sqlite"
    v3 = SCHEMA.replace("    model_version INTEGER,                   -- models.version that made it "
                        "(since version 4; NULL before)\n", "")
    v3 = v3[:v3.index("-- The model versions of a run")] + v3[v3.index("-- Resume looks up"):]
    with sqlite3.connect(db) as conn:
        conn.executescript(v3 + "INSERT INTO schema_version VALUES (3);")
    assert "model_version" not in json.dumps(rows(db, "PRAGMA table_info(forecasts)"))

    async def open_it() -> None:
        async with await TradeStore.open(db):
            pass

    asyncio.run(open_it())
    assert rows(db, "SELECT version FROM schema_version") == [(4,)]
    assert "model_version" in json.dumps(rows(db, "PRAGMA table_info(forecasts)"))
    assert rows(db, "SELECT COUNT(*) FROM models") == [(0,)]


@pytest.mark.asyncio
async def test_an_unwritable_checkpoint_folder_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = Settings().with_overrides(run={"db": str(db), "id": "r"}, model={
        "retrain": {"enabled": True, "model": "cnn_gru", "checkpoint_dir": str(blocker / "models")}})
    with pytest.raises(ConfigError, match=r"'model.retrain.checkpoint_dir': cannot write checkpoints"):
        check_folder(settings)        # run_daemon asks before it opens the trade log
    async with await TradeStore.open(db) as store:
        await store.begin_run("r", "paper", settings.to_json(), settings.config_hash, "t", 0)
        with pytest.raises(ConfigError, match=r"'model.retrain.checkpoint_dir': cannot write checkpoints"):
            await ModelKeeper.open(settings, store, "r", EwmaMomentumPredictor(), ())


@pytest.mark.asyncio
async def test_a_retrain_launches_once_its_bar_is_committed_even_if_a_later_bar_commits_it(tmp_path: Path) -> None:
    """The engine tells the keeper of committed bars only; a bar held in memory (the log not writable) is
    committed with a later one, and the retrain it started launches then, once."""
    db = tmp_path / "t.sqlite"
    settings = cnn_gru_retrains(db)
    async with await TradeStore.open(db) as store:
        await store.begin_run("r", "paper", settings.to_json(), settings.config_hash, "t", 0)
        keeper = await ModelKeeper.open(settings, store, "r", EwmaMomentumPredictor(), ())
        launched: list[int] = []

        async def launch(job: RetrainJob) -> None:
            launched.append(job.version)
        keeper._launch = launch  # type: ignore[method-assign]
        job = alarm_job(settings, db, "", "")
        keeper.pending, keeper._launch_after = job, T
        keeper.bar_committed(T - H)          # an earlier bar: not yet
        await asyncio.sleep(0)
        assert launched == []
        keeper.bar_committed(T + H)          # T was held; it went in with T + H
        await asyncio.sleep(0)
        keeper.bar_committed(T + 2 * H)
        await asyncio.sleep(0)
        assert launched == [2]
