"""Upgrading the bot keeps old trade logs usable: schema v1 → v2 on open, and runs resume after new config keys.

The fixture is a real trade log written by the bot at schema version 1 (`bot demo
--bars 60` of the release before schema 2), gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings, config_changes
from bot.errors import DataError
from bot.store.trade_store import TradeStore

V1_LOG = Path(__file__).parent / "data" / "trade_log_v1_demo.sqlite.gz"
T_LATER = 1_800_000_000_000


@pytest.fixture
def v1_log(tmp_path: Path) -> Path:
    path = tmp_path / "old.sqlite"
    path.write_bytes(gzip.decompress(V1_LOG.read_bytes()))
    return path


def q(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def settings_of_old_run(path: Path) -> tuple[str, Settings]:
    run_id, config_json = q(path, "SELECT run_id, config_json FROM runs")[0]
    return run_id, Settings().with_overrides(**json.loads(config_json))


@pytest.mark.asyncio
async def test_v1_log_is_migrated_and_its_run_resumes_with_the_same_account(v1_log: Path) -> None:
    before_fills = q(v1_log, "SELECT order_id, symbol, qty, price, fee FROM fills ORDER BY order_id")
    before_orders = q(v1_log, "SELECT order_id, status, qty FROM orders ORDER BY order_id")
    last_cash = q(v1_log, "SELECT cash FROM equity ORDER BY bar_ms DESC LIMIT 1")[0][0]
    last_pos = dict(q(v1_log, "SELECT symbol, qty FROM positions WHERE bar_ms = (SELECT MAX(bar_ms) FROM positions) "
                              "AND CAST(qty AS REAL) != 0"))
    assert q(v1_log, "SELECT version FROM schema_version") == [(1,)] and len(before_fills) > 0
    run_id, settings = settings_of_old_run(v1_log)
    stored_hash = q(v1_log, "SELECT config_hash FROM runs")[0][0]
    assert settings.config_hash != stored_hash          # the new version added keys, at their defaults

    async with await TradeStore.open(v1_log) as store:
        session_no, resume = await store.begin_run(run_id, "paper", settings.to_json(), settings.config_hash,
                                                   "upgrade-test", T_LATER)
    assert q(v1_log, "SELECT MAX(version) FROM schema_version") == [(4,)]
    assert session_no == 2 and resume is not None
    assert resume.cash == Decimal(last_cash)
    assert {s: str(qty) for s, (qty, _) in resume.positions.items()} == last_pos
    # Every fill and order survived the table rebuild, values exact, with an empty exchange trade id.
    assert q(v1_log, "SELECT order_id, symbol, qty, price, fee FROM fills ORDER BY order_id") == before_fills
    assert {t for (t,) in q(v1_log, "SELECT trade_id FROM fills")} == {""}
    assert q(v1_log, "SELECT order_id, status, qty FROM orders ORDER BY order_id") == before_orders
    assert q(v1_log, "PRAGMA foreign_key_check") == []


@pytest.mark.asyncio
async def test_an_actually_changed_key_is_still_refused_by_name(v1_log: Path) -> None:
    run_id, settings = settings_of_old_run(v1_log)
    changed = settings.with_overrides(risk={"gate": {"sigma_max": 0.05}})
    async with await TradeStore.open(v1_log) as store:
        with pytest.raises(DataError, match=r"changed: risk\.gate\.sigma_max"):
            await store.begin_run(run_id, "paper", changed.to_json(), changed.config_hash, "t", T_LATER)


def test_report_reads_and_reconciles_a_migrated_log(v1_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(v1_log)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("  ok  ") >= 3


def test_config_changes_treats_new_keys_at_their_default_as_unchanged() -> None:
    current = json.loads(Settings().to_json())
    old = json.loads(Settings().to_json())
    del old["model"]["cnn_gru"]
    del old["paper"]["funding_rate_8h"]
    assert config_changes(json.dumps(old), json.dumps(current)) == []
    moved = Settings().with_overrides(model={"cnn_gru": {**current["model"]["cnn_gru"], "lookback": 256}})
    assert config_changes(json.dumps(old), moved.to_json()) == ["model.cnn_gru"]
    old["paper"]["gone_key"] = 1
    assert config_changes(json.dumps(old), json.dumps(current)) == ["paper.gone_key"]
    old2 = json.loads(Settings().to_json())
    old2["risk"]["gate"]["sigma_max"] = 0.5
    assert config_changes(json.dumps(old2), Settings().to_json()) == ["risk.gate.sigma_max"]
