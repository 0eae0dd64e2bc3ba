"""A generated market in CSV files and a small sweep spec over it (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

BASE = """\
[market]
window = 48
[risk.gate]
rule = "strength"
[forecast.skill]
enabled = false
"""

SPEC = """\
[sweep]
data = ["data"]
config = "base.toml"
symbol_sets = [["BTC/USDT", "ETH/USDT"], ["SOL/USDT"]]

[folds]
from = 2024-01-04
to = "2024-01-22"
count = 3
test = 1

[grid]
"risk.gate.long_entry_strength" = [0.05, 0.2]
"""


@pytest.fixture(scope="session")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.feeds.replay.csvdata import write_ohlcv_csv
    from bot.feeds.replay.synthetic import generate_market

    root = tmp_path_factory.mktemp("sweep-market")
    (root / "data").mkdir()
    market = generate_market(["BTC/USDT", "ETH/USDT", "SOL/USDT"], 520, 1_704_067_200_000, seed=3)
    for sym, series in market.items():
        write_ohlcv_csv(root / "data" / f"{sym.replace('/', '')}-1h.csv", series)
    return root / "data"


@pytest.fixture
def spec_dir(tmp_path: Path, market_dir: Path) -> Path:
    (tmp_path / "data").symlink_to(market_dir)
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "spec.toml").write_text(SPEC)
    return tmp_path
