"""The JSON API and pages over a trade log the real engine wrote, through real HTTP on loopback."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.reporting.review import build_review
from bot.reporting.run_report import load_report
from bot.reporting.tradelog import load_trade_log
from bot.web.serve import api_token, check_bind

TOKEN = "test-token-0123456789abcdef"   # the servers below that have controls use it

PAGES = ("overview", "tearsheet", "symbols", "trades", "risk", "forecasts", "health")


def test_runs_and_equity_match_the_trade_log(backtest_log: Path, serve) -> None:
    s = serve(backtest_log)
    with s.client() as c:
        runs = c.get("/api/runs").json()
        assert [r["run_id"] for r in runs] == ["bt"]
        equity = c.get("/api/runs/bt/equity").json()
    with sqlite3.connect(backtest_log) as conn:
        rows = conn.execute("SELECT bar_ms, equity FROM equity WHERE run_id = 'bt' ORDER BY bar_ms").fetchall()
    assert [(e["bar_ms"], Decimal(e["equity"])) for e in equity] == [(b, Decimal(x)) for b, x in rows]
    assert runs[0]["bars"] == len(rows) and Decimal(runs[0]["equity_end"]) == Decimal(rows[-1][1])


def test_summary_is_the_reports_figures(backtest_log: Path, serve) -> None:
    review = build_review(load_trade_log(backtest_log, "bt"))
    report = load_report(backtest_log, "bt")
    with serve(backtest_log).client() as c:
        summary = c.get("/api/runs/bt/summary").json()
        trips = c.get("/api/runs/bt/round-trips").json()
        fills = c.get("/api/runs/bt/fills").json()
    assert Decimal(summary["fees"]) == report.fees and summary["fills"] == report.trades > 0
    assert summary["performance"]["sharpe"] == pytest.approx(review.perf.sharpe)
    assert all(check["ok"] for check in summary["checks"])
    assert len(trips) == len(review.trips) and len(fills) == report.trades
    # Round trips (the open one marked) add up to the equity change, to the last unit.
    assert sum(Decimal(t["pnl"]) for t in trips) == report.equity_end - report.equity_start


def test_every_page_and_figure_renders(backtest_log: Path, serve) -> None:
    with serve(backtest_log).client() as c:
        for page in PAGES:
            r = c.get(f"/runs/bt/{page}")
            assert r.status_code == 200, (page, r.text[:300])
            assert "<table" in r.text or page == "symbols"
        html = c.get("/runs/bt/symbols").text
        assert "data-figure=" in html and "BTC%2FUSDT" in html
        for name in ("equity", "drawdown", "exposure", "var", "state", "reliability", "pit", "rolling-nll",
                     "coverage", "rolling-sharpe", "rolling-volatility", "returns", "monthly"):
            fig = c.get(f"/api/runs/bt/figures/{name}").json()
            assert fig["data"] and "layout" in fig, name
        fig = c.get("/api/runs/bt/figures/symbol", params={"symbol": "BTC/USDT"}).json()
        kinds = {t["type"] for t in fig["data"]}
        assert "candlestick" in kinds and any(t.get("name") == "buy fills" for t in fig["data"])
        assert c.get("/api/runs/bt/figures/nope").status_code == 404
        assert c.get("/api/runs/bt/figures/symbol").status_code == 422
        assert c.get("/static/plotly.min.js").status_code == 200
        assert c.get("/openapi.json").json()["paths"]["/api/runs/{run_id}/equity"]


def test_forecast_band_uses_logged_z_and_decision_reason(backtest_log: Path, serve) -> None:
    with serve(backtest_log).client() as c:
        data = c.get("/api/runs/bt/candles", params={"symbol": "ETH/USDT"}).json()
    with sqlite3.connect(backtest_log) as conn:
        z68, reason = conn.execute(
            "SELECT f.z68, d.reason FROM forecasts f JOIN decisions d USING (run_id, bar_ms, symbol) "
            "WHERE f.symbol = 'ETH/USDT' ORDER BY f.bar_ms DESC LIMIT 1").fetchone()
    last = data["forecasts"][-1]
    assert last["z68"] == pytest.approx(z68) and last["reason"] == reason


def test_decisions_filter_by_reason_kind(backtest_log: Path, serve) -> None:
    with serve(backtest_log).client() as c:
        everything = c.get("/api/runs/bt/decisions", params={"limit": 100_000}).json()
        kinds = {d["kind"] for d in everything["decisions"]}
        kind = sorted(kinds)[0]
        some = c.get("/api/runs/bt/decisions", params={"kind": kind, "limit": 100_000}).json()
        page = c.get("/runs/bt/trades", params={"kind": kind}).text
    assert 0 < some["total"] < everything["total"] and {d["kind"] for d in some["decisions"]} == {kind}
    assert f'value="{kind}" selected' in page


def test_unknown_run_is_404_and_reads_never_write(backtest_log: Path, serve) -> None:
    before = backtest_log.stat().st_mtime_ns
    with serve(backtest_log).client() as c:
        assert c.get("/api/runs/nope/equity").status_code == 404
        assert c.get("/runs/nope/overview").status_code == 404
        for page in PAGES:
            c.get(f"/runs/bt/{page}")
    assert backtest_log.stat().st_mtime_ns == before


def test_controls_refused_without_a_token(backtest_log: Path, serve) -> None:
    with serve(backtest_log).client() as c:   # the server has no token: controls are off
        r = c.post("/api/runs/bt/commands", json={"command": "flatten"})
        assert r.status_code == 403
    with serve(backtest_log, TOKEN).client() as c:
        assert c.post("/api/runs/bt/commands", json={"command": "flatten"}).status_code == 401
        r = c.post("/api/runs/bt/commands", json={"command": "flatten"}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert c.get("/api/runs/bt/commands").json() == []


def test_a_command_with_the_token_is_queued_and_no_page_shows_the_token(backtest_log: Path, serve,
                                                                        tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite"
    with sqlite3.connect(backtest_log) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    with serve(db, TOKEN).client() as c:
        r = c.post("/api/runs/bt/commands", json={"command": "stop-entries", "note": "<b>maintenance</b>"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 202, r.text
        queued = c.get("/api/runs/bt/commands").json()
        assert [(q["command"], q["taken_bar_ms"]) for q in queued] == [("stop-entries", None)]
        texts = [c.get(f"/runs/bt/{p}").text for p in PAGES] + [c.get("/").text]
        texts += [c.get(u).text for u in ("/api/runs", "/api/runs/bt/summary", "/api/runs/bt/status",
                                          "/api/runs/bt/commands", "/openapi.json")]
        texts.append(r.text)
    assert not any(TOKEN in t for t in texts)
    risk = texts[PAGES.index("risk")]
    assert "&lt;b&gt;maintenance&lt;/b&gt;" in risk and 'id="controls"' in risk


def test_binding_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="BOT_API_TOKEN"):
        check_bind("0.0.0.0", None)
    assert api_token({}) is None and api_token({"BOT_API_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(ConfigError, match="at least"):
        api_token({"BOT_API_TOKEN": "short"})


def test_latency_of_a_backtest_is_empty_and_said_so(backtest_log: Path, serve) -> None:
    """A backtest's bars come from memory: no bar_timings rows, and the health page says why."""
    s = serve(backtest_log)
    with s.client() as c:
        lat = c.get("/api/runs/bt/latency").json()
        page = c.get("/runs/bt/health").text
    assert (lat["bars"], lat["late"], lat["feed"], lat["timings"]) == (0, 0, None, [])
    assert "no bar timings in this trade log" in page


def test_latency_of_a_daemon_run(tmp_path: Path, serve) -> None:
    """Timings written as the daemon writes them come back through the API with their percentiles."""
    import asyncio

    from bot.store.rows import BarTiming
    from bot.store.trade_store import TradeStore

    db = tmp_path / "live.sqlite"
    h, t0 = 3_600_000, 1_767_225_600_000

    async def write() -> None:
        async with await TradeStore.open(db) as store:
            await store.begin_run("live", "paper", "{}", "hash", "test", t0)
            for k, feed in enumerate((300, 500, 900)):
                close = t0 + (k + 1) * h
                await store.record_timing("live", BarTiming(close - h, close, close + feed - 50, close + feed,
                                                            close + feed + 20, 2, False))
    asyncio.run(write())
    with serve(db).client() as c:
        lat = c.get("/api/runs/live/latency").json()
    assert lat["bars"] == 3 and lat["off_clock"] == 0
    assert lat["feed"]["p50_ms"] == 500 and lat["feed"]["max_ms"] == 900
    assert lat["processing"]["p99_ms"] == 20 and lat["wait"]["max_ms"] == 50
    assert lat["total"]["max_ms"] == 920
    assert [t["committed_ms"] - t["close_ms"] for t in lat["timings"]] == [320, 520, 920]
def test_models_lists_the_runs_model_versions(backtest_log: Path, serve) -> None:
    with serve(backtest_log).client() as c:
        models = c.get("/api/runs/bt/models").json()
    with sqlite3.connect(backtest_log) as conn:
        first, last = conn.execute("SELECT MIN(bar_ms), MAX(bar_ms) FROM equity WHERE run_id = 'bt'").fetchone()
        versions = {v for (v,) in conn.execute("SELECT DISTINCT model_version FROM forecasts WHERE run_id = 'bt'")}
    assert [(m["version"], m["status"], m["trigger"], m["kind"]) for m in models] == [(1, "serving", "config",
                                                                                      "baseline")]
    assert (models[0]["first_bar_ms"], models[0]["last_bar_ms"]) == (first, last) and versions == {1}
    assert models[0]["settings"]["name"] == "baseline"


def test_forecast_page_shows_the_versions_and_the_swap(backtest_log: Path, serve) -> None:
    """One version (a backtest): listed, no swap; two served versions: the swap at the new one's first bar."""
    import json

    from bot.store.models import ModelVersion
    from bot.web.pages import models_tables

    with serve(backtest_log).client() as c:
        page = c.get("/runs/bt/forecasts").text
    assert 'id="models"' in page and "v1" in page and 'id="swaps"' not in page
    h = 3_600_000
    scores = {"candidate": {"nll": -3.5, "calibration_error": 0.01, "skill": 0.4},
              "serving": {"nll": -3.2, "calibration_error": 0.02, "skill": 0.0}}
    html = models_tables([ModelVersion(1, "multi_asset", "retired", "config", first_bar_ms=0, last_bar_ms=9 * h),
                    ModelVersion(2, "multi_asset", "serving", "alarm", train_from_ms=0, train_to_ms=8 * h,
                                 train_seconds=4.2, device="cpu", scores=json.dumps(scores),
                                 reason="NLL better by 0.3", first_bar_ms=10 * h, last_bar_ms=20 * h),
                    ModelVersion(3, "multi_asset", "rejected", "schedule", reason="NLL not better: -3.1 vs -3.5")])
    assert html.count("<tr") == 1 + 3 + 1 + 1   # header and three versions, then the swaps' header and one swap
    assert "v1 → v2" in html and "1970-01-01 10:00" in html
    assert "NLL -3.5000 vs -3.2000" in html and "4.2 s on cpu" in html and "NLL not better" in html
