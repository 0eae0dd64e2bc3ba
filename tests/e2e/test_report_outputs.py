"""End to end: a real trade log from the daemon against the replay exchange, then ``bot report`` with every
output, checked against the trade log itself and against quantstats on the same equity curve."""

from __future__ import annotations

import asyncio
import csv
import gzip
import sqlite3
import struct
import warnings
from decimal import Decimal, localcontext
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.cli import main
from bot.config import Settings
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.reporting.review import build_review
from bot.reporting.tradelog import load_trade_log
from bot.runs.daemon import run_daemon

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)   # quantstats' import chain, not ours
    warnings.simplefilter("ignore", FutureWarning)
    import quantstats as qs

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
WINDOW, BARS = 48, 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
V1_LOG = Path(__file__).parents[1] / "bot" / "store" / "data" / "trade_log_v1_demo.sqlite.gz"


@pytest.fixture(scope="module")
def trade_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("report") / "run.sqlite"
    data = generate_market(SYMBOLS, WINDOW + BARS + 1, 1_704_067_200_000, seed=11)

    async def go() -> None:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as exchange:
            settings = Settings().with_overrides(
                run={"db": str(db), "id": "e2e"}, market={"symbols": SYMBOLS, "window": WINDOW},
                feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 5.0},
                forecast={"skill": {"enabled": False}},
                risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05, "exit_strength": 0.01}})
            result = await asyncio.wait_for(run_daemon(settings, asyncio.Event(), max_bars=BARS), timeout=120)
        assert result.stats.bars == BARS

    asyncio.run(go())
    return db


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                (self.images if tag == "img" else self.references).append(value)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
def test_report_writes_html_png_and_csv_that_match_the_trade_log(trade_log: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = {k: tmp_path / f"out.{k}" for k in ("html", "png", "csv")}
    assert main(["report", "--db", str(trade_log), "--html", str(out["html"]), "--png", str(out["png"]),
                 "--csv", str(out["csv"])]) == 0
    text = capsys.readouterr().out
    for heading in ("Performance", "Round trips", "Forecast quality", "PnL by sigma bucket", "The gate's worth"):
        assert heading in text
    assert "FAIL" not in text

    page = Page()
    page.feed(out["html"].read_text(encoding="utf-8"))
    # One file without a network reference: plotly.js, the figures and the page script are inline.
    assert page.tags[0] == "html" and "script" in page.tags and "link" not in page.tags and "img" not in page.tags
    assert [r for r in page.references if not r.startswith("#")] == []
    assert out["html"].read_text(encoding="utf-8").count("data-figure=") == 3 + 7 + len(SYMBOLS) + 2 + 4 + 1   # the health page: latency

    assert png_size(out["png"].read_bytes()) == (1000, 600)

    with out["csv"].open(newline="") as fh:
        fills = list(csv.DictReader(fh))
    logged = rows(trade_log, "SELECT order_id, trade_id, symbol, decision_bar_ms, bar_ms, side, qty, price, fee, reason "
                             "FROM fills WHERE run_id = 'e2e' ORDER BY bar_ms, order_id")
    assert len(fills) == len(logged) > 10
    assert sorted((f["order_id"], f["trade_id"], f["symbol"], int(f["decision_bar_ms"]), int(f["bar_ms"]), f["side"],
                   f["qty"], f["price"], f["fee"], f["reason"]) for f in fills) == sorted(logged)
    with (tmp_path / "out-round-trips.csv").open(newline="") as fh:
        trips = list(csv.DictReader(fh))
    (start,), (end,) = (rows(trade_log, f"SELECT equity FROM equity WHERE run_id = 'e2e' ORDER BY bar_ms {o} LIMIT 1")
                        [0] for o in ("ASC", "DESC"))
    with localcontext(prec=60):
        # Every round trip's PnL (the open ones marked) adds up to the equity change, to the last unit.
        assert sum((Decimal(t["pnl"]) for t in trips), Decimal(0)) == Decimal(end) - Decimal(start)
        assert sum((Decimal(t["fees"]) for t in trips), Decimal(0)) == sum((Decimal(f["fee"]) for f in fills),
                                                                          Decimal(0))


@pytest.mark.slow
def test_review_metrics_agree_with_quantstats_on_the_logged_equity(trade_log: Path) -> None:
    review = build_review(load_trade_log(trade_log))
    equity = rows(trade_log, "SELECT bar_ms, equity FROM equity WHERE run_id = 'e2e' ORDER BY bar_ms")
    values = np.array([float(e) for _, e in equity])
    index = pd.DatetimeIndex(pd.to_datetime([b for b, _ in equity[1:]], unit="ms"))
    r = pd.Series(values[1:] / values[:-1] - 1, index=index)
    p = review.perf
    assert p is not None and p.max_drawdown is not None and review.periods == 8760
    assert p.sharpe == pytest.approx(float(qs.stats.sharpe(r, periods=8760)), rel=1e-9)
    assert p.sortino == pytest.approx(float(qs.stats.sortino(r, periods=8760)), rel=1e-9)
    assert p.volatility == pytest.approx(float(qs.stats.volatility(r, periods=8760)), rel=1e-9)
    assert p.cagr == pytest.approx(float(qs.stats.cagr(r, periods=8760)), rel=1e-9)
    assert p.max_drawdown.depth == pytest.approx(-float(qs.stats.max_drawdown(r)), rel=1e-9)
    assert p.calmar == pytest.approx(float(qs.stats.calmar(r, periods=8760)), rel=1e-9)
    # Time in market: share of marks with a position row, from SQL.
    held = rows(trade_log, "SELECT COUNT(DISTINCT bar_ms) FROM positions WHERE run_id = 'e2e' AND "
                           "CAST(qty AS REAL) != 0")[0][0]
    assert review.time_in_market == pytest.approx(held / BARS)
    # Every forecast but the last bar's has an outcome; the refusals counted are the flat 'none' decisions.
    assert review.quality is not None and review.quality.n == (BARS - 1) * len(SYMBOLS)
    refused = rows(trade_log, "SELECT COUNT(*) FROM decisions d JOIN forecasts f USING (run_id, bar_ms, symbol) "
                              "WHERE d.run_id = 'e2e' AND d.action = 'none' AND CAST(d.target_qty AS REAL) = 0 "
                              "AND f.mu != 0 AND d.bar_ms < (SELECT MAX(bar_ms) FROM equity)")[0][0]
    assert sum(g.signals for g in review.gate if not g.kind.startswith("taken")) == refused > 0
    assert review.bench is not None and review.bench_symbols == tuple(SYMBOLS)


def test_a_version_1_log_gets_the_whole_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.sqlite"
    db.write_bytes(gzip.decompress(V1_LOG.read_bytes()))
    assert rows(db, "SELECT version FROM schema_version") == [(1,)]
    assert main(["report", "--db", str(db), "--csv", str(tmp_path / "t.csv"), "--html", str(tmp_path / "r.html")]) == 0
    assert "Forecast quality" in capsys.readouterr().out
    with (tmp_path / "t.csv").open(newline="") as fh:
        fills = list(csv.DictReader(fh))
    assert len(fills) == rows(db, "SELECT COUNT(*) FROM fills")[0][0] and all(f["trade_id"] == "" for f in fills)
    assert rows(db, "SELECT version FROM schema_version") == [(1,)]     # read as it is, not migrated
