"""Credentials come only from the environment, never leak, and real orders need both run.mode and --live."""

from __future__ import annotations

import configparser
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from bot.cli import main
from bot.cli.logs import reset_logging
from bot.config.secrets import (
    Credentials,
    check_config_data_has_no_secrets,
    check_config_has_no_secrets,
    check_live_guard,
    load_credentials,
)
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
KEY = "K3Y-sigma-leak-canary-5d1e0c"
SECRET = "S3CR3T/sigma+leak=canary&9b7f"
PASSWORD = "PW-sigma-leak-canary-77aa"
ENV = {"BOT_API_KEY": KEY, "BOT_API_SECRET": SECRET, "BOT_API_PASSWORD": PASSWORD}


def forms(*secrets: str) -> set[str]:
    return {f for s in secrets for f in (s, quote(s, safe=""), quote_plus(s), quote(s))}


LEAKS = forms(KEY, SECRET, PASSWORD)


def assert_clean(where: str, text: str) -> None:
    found = [f for f in LEAKS if f in text]
    assert not found, f"a credential leaked into {where}"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


# --- Credentials ----------------------------------------------------------------------------------------------

def test_credentials_never_show_their_values() -> None:
    c = Credentials(KEY, SECRET, PASSWORD)
    for text in (repr(c), str(c), f"{c}", f"{c!r}", repr([c]), repr({"c": c})):
        assert_clean("repr", text)
    assert repr(c) == "Credentials(api_key=***, api_secret=***, password=***)"
    assert repr(Credentials(KEY, SECRET)) == "Credentials(api_key=***, api_secret=***, password=None)"
    assert c.values() == (KEY, SECRET, PASSWORD)
    assert Credentials(KEY, SECRET).values() == (KEY, SECRET)


def test_load_credentials_from_the_environment_only() -> None:
    assert load_credentials({}) is None
    assert load_credentials({"BOT_API_KEY": "", "BOT_API_SECRET": "  "}) is None
    c = load_credentials(ENV)
    assert c is not None and (c.api_key, c.api_secret, c.password) == (KEY, SECRET, PASSWORD)
    c = load_credentials({"BOT_API_KEY": f" {KEY}\n", "BOT_API_SECRET": SECRET})
    assert c is not None and c.api_key == KEY and c.password is None


@pytest.mark.parametrize("env, message", [
    ({"BOT_API_KEY": KEY}, "BOT_API_KEY is set but BOT_API_SECRET is not"),
    ({"BOT_API_SECRET": SECRET}, "BOT_API_SECRET is set but BOT_API_KEY is not"),
    ({"BOT_API_PASSWORD": PASSWORD}, "BOT_API_PASSWORD is set but"),
])
def test_half_set_credentials_are_refused_without_echoing_them(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        load_credentials(env)
    assert_clean("the error", str(exc.value))


# --- No secrets in config.toml --------------------------------------------------------------------------------

@pytest.mark.parametrize("toml, key", [
    (f'[exchange]\napi_key = "{KEY}"\n', "exchange.api_key"),
    (f'[run]\nid = "x"\napiSecret = "{SECRET}"\n', "run.apiSecret"),
    (f'secret = "{SECRET}"\n', "secret"),
    (f'[feed.auth]\npassword = "{PASSWORD}"\n', "feed.auth.password"),
    (f'[[accounts]]\nname = "a"\npassphrase = "{PASSWORD}"\n', "accounts[0].passphrase"),
])
def test_config_with_a_credential_is_refused(toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        check_config_has_no_secrets(toml)
    message = str(exc.value)
    assert f"'{key}'" in message
    assert "API keys come only from environment variables BOT_API_KEY/BOT_API_SECRET" in message
    assert_clean("the error", message)


def test_shipped_config_and_bad_toml_pass_the_secret_check() -> None:
    check_config_has_no_secrets((REPO / "config.toml").read_text(encoding="utf-8"))
    check_config_has_no_secrets("this is [not toml")   # the loader reports the parse error
    check_config_data_has_no_secrets({"run": {"id": "x"}, "market": {"symbols": ["BTC/USDT"]}})


def test_cli_refuses_a_config_holding_a_credential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[run]\nid = "x"\napi_key = "{KEY}"\n', encoding="utf-8")
    assert main(["run", "--config", str(cfg), "--db", str(tmp_path / "t.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "api_key" in err
    assert_clean("stderr", err)


# --- Live-mode guard ------------------------------------------------------------------------------------------

CREDS = Credentials(KEY, SECRET)


def test_paper_needs_nothing() -> None:
    check_live_guard("paper", False, None)
    check_live_guard("paper", False, CREDS)


def test_live_mode_with_flag_and_credentials_may_start() -> None:
    check_live_guard("live", True, CREDS)   # the exchange executor exists: nothing left to refuse


def test_cli_live_mode_with_unreachable_exchange_stops_with_an_execution_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[run]\nmode = "live"\n[feed]\nws_url = "ws://127.0.0.1:9/stream"\n'
                   'rest_url = "http://127.0.0.1:9/api"\nrest_max_attempts = 1\n'
                   '[exchange]\nrest_url = "http://127.0.0.1:9/api/v3"\n', encoding="utf-8")
    argv = ["run", "--config", str(cfg), "--db", str(tmp_path / "t.sqlite"), "--max-bars", "1", "--live"]
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert "execution error: markets failed" in err and "ExchangeNotAvailable" in err
    assert_clean("stderr", err)


@pytest.mark.parametrize("mode, flag, creds, message", [
    ("live", False, CREDS, "run.mode is 'live' but --live was not given"),
    ("paper", True, CREDS, "--live given but run.mode is 'paper'"),
    ("paper", True, None, "--live given but run.mode is 'paper'"),
    ("live", True, None, "no credentials are set: API keys come only from environment variables "
                         "BOT_API_KEY/BOT_API_SECRET"),
])
def test_live_guard_refusals(mode: str, flag: bool, creds: Credentials | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        check_live_guard(mode, flag, creds)
    assert_clean("the error", str(exc.value))
    if not (mode == "live" and flag and creds):
        assert "run.mode" in str(exc.value) and ("--live" in str(exc.value) or "BOT_API_KEY" in str(exc.value))


def test_cli_live_flag_without_live_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "t.sqlite"
    assert main(["run", "--live", "--db", str(db), "--max-bars", "1"]) == 2
    err = capsys.readouterr().err
    assert "--live given but run.mode is 'paper'" in err
    assert_clean("stderr", err)
    assert not db.exists()   # refused before anything started


def test_cli_half_set_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_API_KEY", KEY)
    monkeypatch.delenv("BOT_API_SECRET", raising=False)
    assert main(["run", "--db", str(tmp_path / "t.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "BOT_API_SECRET is not" in err
    assert_clean("stderr", err)


@pytest.mark.parametrize("flag, env, message", [
    (False, ENV, "run.mode is 'live' but --live was not given"),
    (True, {}, "no credentials are set"),
])
def test_cli_live_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                       flag: bool, env: dict[str, str], message: str) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[run]\nmode = "live"\n[feed]\nws_url = "ws://127.0.0.1:9/stream"\n'
                   'rest_url = "http://127.0.0.1:9/api"\n', encoding="utf-8")
    db = tmp_path / "t.sqlite"
    argv = ["run", "--config", str(cfg), "--db", str(db), "--max-bars", "1"] + (["--live"] if flag else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert_clean("stderr", err)
    assert not db.exists()


# --- Nothing leaks through a whole run ------------------------------------------------------------------------

def table_texts(db: Path) -> Iterator[tuple[str, str]]:
    """(table, value) for every TEXT or BLOB value of every table."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"runs", "sessions", "equity", "orders", "fills"} <= set(tables)
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        yield table, value.decode("utf-8", "replace")
                    elif isinstance(value, str):
                        yield table, value


@pytest.mark.slow
def test_credentials_leak_nowhere_in_a_demo_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    db = tmp_path / "demo.sqlite"
    log_file = tmp_path / "logs" / "bot.log"
    log_file.parent.mkdir()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[run]\nlog_level = "DEBUG"\nlog_file = "{log_file.as_posix()}"\n', encoding="utf-8")
    argv = ["demo", "--bars", "60", "--db", str(db), "--verbose", "--config", str(cfg)]
    assert main(argv) == 0
    reset_logging()
    demo = capsys.readouterr()
    assert "decided 60 bars" in demo.out
    assert_clean("the demo's stdout", demo.out)
    assert_clean("the demo's stderr", demo.err)
    logs = [p for p in log_file.parent.iterdir()]
    assert logs and sum(p.stat().st_size for p in logs) > 0
    for p in logs:
        assert_clean(f"log file {p.name}", p.read_text(encoding="utf-8"))
    values = list(table_texts(db))
    assert any(t == "runs" for t, _ in values)
    for table, value in values:
        assert_clean(f"table {table}", value)
    for command in (["report", "--db", str(db)], ["status", "--db", str(db)]):
        assert main(command) == 0
        out = capsys.readouterr()
        assert out.out.strip()
        assert_clean(f"bot {command[0]}", out.out + out.err)


# --- systemd unit ---------------------------------------------------------------------------------------------

def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str   # type: ignore[assignment,method-assign]   # systemd keys are case-sensitive
    text = (REPO / "scripts" / "sigma-bot.service").read_text(encoding="utf-8")
    unit.read_string(text)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    s = unit["Service"]
    assert s["Type"] == "simple"
    assert s["ExecStart"] == "/opt/sigma-bot/.venv/bin/bot run --config /etc/sigma-bot/config.toml"
    assert "--live" not in s["ExecStart"]
    assert s["User"] == "sigma-bot"
    assert s["WorkingDirectory"].startswith("/")
    assert (s["Restart"], s["RestartSec"]) == ("on-failure", "10")
    assert (s["KillSignal"], s["TimeoutStopSec"]) == ("SIGTERM", "60")
    assert s["EnvironmentFile"].lstrip("-") == "/etc/sigma-bot/secrets.env"
    assert s["NoNewPrivileges"] == "true" and s["ProtectSystem"] == "strict"
    writable = s["ReadWritePaths"].split()
    assert "/var/lib/sigma-bot" in writable and "/var/log/sigma-bot" in writable
    assert s["WorkingDirectory"] in writable   # a relative [run] db lands in a writable folder
    # numba's cache (the compiled no-trade band) in a writable folder; no W^X ban on the JIT's memory
    cache = s["Environment"].removeprefix("NUMBA_CACHE_DIR=")
    assert any(cache.startswith(w + "/") for w in writable), s["Environment"]
    assert "MemoryDenyWriteExecute" not in s
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # The secrets file's permissions are spelled out beside it, and no credential sits in the unit.
    assert "chmod 600" in text
    assert "BOT_API_KEY=" not in text.replace("BOT_API_KEY=...", "")
