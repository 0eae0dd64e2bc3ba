"""Config errors name the bad key and what is allowed; good files load into frozen settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings, load_settings, parse_settings
from bot.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_shipped_config_is_valid_and_equals_the_embedded_defaults() -> None:
    assert load_settings(REPO / "config.toml") == Settings()


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.market.window = 3  # type: ignore[misc]


@pytest.mark.parametrize("toml, must_name", [
    ("[market]\nwindoww = 10", "unknown config key 'market.windoww'; allowed keys here: exchange, symbols"),
    ("[marekt]\nwindow = 10", "unknown config key 'marekt'"),
    ("[market]\nwindow = 'big'", "config key 'market.window': expected an integer, got str"),
    ("[market]\nwindow = 2", "'market.window': 2 is out of range; allowed: [32, 5000]"),
    ("[market]\ntimeframe = '2m'", "'market.timeframe': '2m' is not allowed; allowed values: '1m'"),
    ("[market]\nsymbols = ['BTC-USDT']", "'market.symbols[0]': unknown symbol 'BTC-USDT'; allowed: BASE/QUOTE"),
    ("[market]\nsymbols = []", "'market.symbols': at least one symbol"),
    ("[market]\nsymbols = 'BTC/USDT'", "'market.symbols': expected a list"),
    ("[market]\nsymbols = ['BTC/USDT', 'BTC/USDT']", "listed twice"),
    ("[paper]\ntaker_fee_bps = -1", "'paper.taker_fee_bps': -1 is out of range; allowed: [0, 500]"),
    ("[paper]\ninitial_cash = 'lots'", "'paper.initial_cash': expected a number or a decimal string"),
    ("[risk.gate]\nsigma_max = 0", "'risk.gate.sigma_max': 0.0 is out of range; allowed: (0.0, 1.0]"),
    ("[risk.gate]\nsigma_max = nan", "'risk.gate.sigma_max': expected a number"),
    ("[risk.gate]\nexit_strength = 0.5", "'risk.gate.exit_strength': 0.5 must not exceed the smaller entry"),
    ("[risk.gate]\nlong_entry_strength = 0.01", "'risk.gate.exit_strength': 0.03 must not exceed"),
    ("[risk.var]\nmethod = 'monte_carlo'", "'risk.var.method': 'monte_carlo' is not allowed; allowed values: 'max'"),
    ("[risk.var]\nalpha = 0.5", "'risk.var.alpha': 0.5 is out of range; allowed: [0.9, 0.9999]"),
    ("[risk.state]\nreduce_drawdown = 0.3", "'risk.state.reduce_drawdown': 0.3 must not exceed"),
    ("[risk.sizing]\nmax_leverage = 0.5", "'risk.sizing.max_leverage': 0.5 is out of range; allowed: [1.0, 125.0]"),
    ("[risk]\nsizing = 3", "config section 'risk.sizing' must be a table"),
    ("[paper]\nfunding_rate_8h = 0.5", "'paper.funding_rate_8h': 0.5 is out of range"),
    ("[feed]\nbackfill = 'yes'", "'feed.backfill': expected true or false"),
    ("[feed]\nws_url = 'http://x'", "'feed.ws_url': 'http://x' must start with ws:// or wss://"),
    ("[model]\nname = 'gpt'", "'model.name': 'gpt' is not allowed; allowed values: 'baseline'"),
    ("[model.baseline]\newma_lambda = 1.5", "'model.baseline.ewma_lambda': 1.5 is out of range"),
    ("[run]\nmode = 'demo'", "'run.mode': 'demo' is not allowed; allowed values: 'paper', 'live'"),
    ("[run]\napi_key = 'abc'", "API keys come only from environment variables"),
    ("[run]\nlog_backups = 500", "'run.log_backups': 500 is out of range; allowed: [0, 100]"),
    ("[recovery]\nmax_missed_bars = -1", "'recovery.max_missed_bars': -1 is out of range"),
    ("[watchdog]\nflatten = 'yes'", "'watchdog.flatten': expected true or false"),
    ("market = 3", "config section 'market' must be a table"),
    ("[market\n", "is not valid TOML"),
])
def test_bad_config_names_the_key_and_what_is_allowed(toml: str, must_name: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(toml)
    assert must_name in str(err.value)


def test_partial_file_keeps_defaults_for_the_rest() -> None:
    s = parse_settings("[risk.gate]\nsigma_max = 0.05\n[paper]\ninitial_cash = '2500.50'")
    assert s.risk.gate.sigma_max == 0.05
    assert s.risk.sizing == Settings().risk.sizing
    assert str(s.paper.initial_cash) == "2500.50"
    assert s.market == Settings().market


def test_config_hash_changes_with_any_value() -> None:
    assert Settings().config_hash != parse_settings("[risk.gate]\nsigma_max = 0.05").config_hash
    assert Settings().config_hash == parse_settings("").config_hash


def test_bad_config_stops_bot_run_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[paper]\nslippage_bps = 5000\n")
    db = tmp_path / "never.sqlite"
    assert main(["run", "--config", str(cfg), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "paper.slippage_bps" in err and "allowed: [0, 1000]" in err
    assert not db.exists()


def test_missing_config_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_with_keys_replaces_dotted_keys_and_validates_them() -> None:
    """``bot sweep``'s overrides: a nested key replaced, its siblings kept, a bad key or value named."""
    from bot.config import Settings
    from bot.errors import ConfigError

    base = Settings().with_keys({"risk.gate.short_entry_margin": 2.5})
    s = base.with_keys({"risk.gate.long_entry_margin": 0.5, "forecast.skill.z": 1.0})
    assert (s.risk.gate.long_entry_margin, s.risk.gate.short_entry_margin, s.forecast.skill.z) == (0.5, 2.5, 1.0)
    with pytest.raises(ConfigError, match="unknown config key 'risk.gate.nope'"):
        s.with_keys({"risk.gate.nope": 1})
    with pytest.raises(ConfigError, match="'risk.gate.sigma_max': 2.0 is out of range"):
        s.with_keys({"risk.gate.sigma_max": 2.0})


def test_the_readme_config_table_lists_every_key_with_its_default_and_allowed_values() -> None:
    """The README's Configuration table is made from describe_keys: a new or changed key shows up there."""
    import re
    from pathlib import Path

    from bot.config import describe_keys

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    table = {m[1]: (m[2].strip("`"), m[3]) for m in
             re.finditer(r"^\| `([a-z_.0-9]+)` \| (.*?) \| (.*?) \| .* \|$", readme, flags=re.M)}
    for key, default, allowed, _ in describe_keys():
        assert key in table, f"{key} is not in the README's config table"
        assert table[key] == (default, allowed), key
