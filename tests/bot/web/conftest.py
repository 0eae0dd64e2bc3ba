"""Trade logs made by the real engine, and the dashboard served by a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.config import Settings
from bot.feeds.replay.synthetic import generate_market
from bot.runs.backtest import run_backtest
from bot.web.app import create_app
from bot.web.serve import listen, uvicorn_server

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
WINDOW = 48
BARS = 160
TOKEN = "test-token-0123456789abcdef"


def cost_blind(db: Path, run_id: str = "bt") -> Settings:
    """The cost-blind gate (strength) without the skill scale: the baseline trades, so there are fills."""
    return Settings().with_overrides(
        run={"db": str(db), "id": run_id}, market={"symbols": SYMBOLS, "window": WINDOW},
        forecast={"skill": {"enabled": False}},
        risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05,
                       "exit_strength": 0.01}})


@pytest.fixture(scope="session")
def backtest_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("web") / "backtest.sqlite"
    data = generate_market(SYMBOLS, WINDOW + BARS, 1_704_067_200_000, seed=5)
    result = asyncio.run(run_backtest(cost_blind(db), data, write_behind=False))
    assert result.stats.fills > 0, "the fixture needs fills"
    return db


@dataclass
class Served:
    url: str
    db: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture
def serve() -> Iterator[object]:
    """``serve(db, token=None)``: the app on a free loopback port, in a thread; stopped after the test."""
    servers = []

    def start(db: Path, token: str | None = None, poll_s: float = 0.2) -> Served:
        sock = listen("127.0.0.1", 0)
        server = uvicorn_server(create_app(db, token, poll_s=poll_s), embedded=True)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.02)
        servers.append((server, thread, sock))
        return Served(f"http://127.0.0.1:{sock.getsockname()[1]}", db)

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
