"""strategies/ and risk/ must import without the I/O packages (the GPU box has only torch/numpy/pandas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_strategies_and_risk_do_not_load_io_packages() -> None:
    code = (
        "import sys, strategies.registry, strategies.baseline, risk.manager, risk.var, risk.gate\n"
        "import strategies.evaluate, strategies.checkpoint, strategies.predictor, strategies.workflow\n"
        "import strategies.models.cnn_gru, strategies.models.lstm, strategies.models.knn\n"
        "import strategies.models.fusion, strategies.models.multi_asset\n"
        "import bot.cli, bot.cli.models, bot.feeds.replay.csvdata  # `bot train/evaluate` on the GPU box\n"
        "bot.cli.build_parser()\n"
        "loaded = sorted(m for m in ('websockets', 'ccxt', 'aiosqlite', 'aiohttp') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"I/O packages loaded by strategies/risk: {out.stdout.strip()}"
