"""The dashboard in a real headless browser (Debian chromium + chromedriver through Selenium).

Over a trade log the real daemon wrote against the replay exchange: every page's charts render, the console
has no errors, and a bar appended to the log appears without a reload (server-sent events).  Over a live daemon
with ``[api] enabled``: a flatten sent with the token from the risk page halts trading at the next bar, and one
without the token is refused.  Skipped, with the reason, where no browser is installed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from browser import CHARTS_DRAWN, chromium, console_errors, missing

from bot.config import Settings
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.runs.daemon import run_daemon
from bot.web.serve import listen

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=str(missing()))]

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
WINDOW = 48
H = 3_600_000
TOKEN = "browser-test-token-0123456789"
PAGES = {"overview": 3, "tearsheet": 7, "symbols": 1, "trades": 0, "risk": 2, "forecasts": 4, "health": 1}   # page: charts


def settings_for(exchange: ReplayExchange, db: Path, port: int | None = None) -> Settings:
    return Settings().with_overrides(
        run={"db": str(db), "id": "demo"}, market={"symbols": SYMBOLS, "window": WINDOW},
        feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 5.0},
        forecast={"skill": {"enabled": False}},
        risk={"gate": {"rule": "strength", "long_entry_strength": 0.05, "short_entry_strength": 0.05,
                       "exit_strength": 0.01}},
        api={"enabled": port is not None, "port": port or 8080})


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("browser") / "demo.sqlite"
    data = generate_market(SYMBOLS, WINDOW + 80 + 1, 1_704_067_200_000, seed=3)

    async def go() -> None:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=WINDOW) as exchange:
            await asyncio.wait_for(run_daemon(settings_for(exchange, db), asyncio.Event(), max_bars=80), 120)

    asyncio.run(go())
    return db


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except StaleElementReferenceException:   # the page redrew the element between finding and reading it
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def append_bar(db: Path) -> int:
    """Write one more bar the way a bar lands in the log (a candle per symbol, then its equity row)."""
    with sqlite3.connect(db) as conn:
        last, cash, equity = conn.execute("SELECT bar_ms, cash, equity FROM equity ORDER BY bar_ms DESC LIMIT 1").fetchone()
        new = last + H
        for row in conn.execute("SELECT symbol, open, high, low, close, volume FROM candles WHERE bar_ms = ?",
                                (last,)).fetchall():
            conn.execute("INSERT INTO candles VALUES ('demo', ?, ?, ?, ?, ?, ?, ?, ?)",
                         (row[0], new, new + H - 1, *row[1:]))
        conn.execute("INSERT INTO equity VALUES ('demo', ?, ?, ?)", (new, cash, equity))
    return new


def test_pages_render_and_follow_new_bars(demo_log: Path, serve, tmp_path: Path) -> None:
    site = serve(demo_log)
    driver = chromium(tmp_path / "profile")
    try:
        for page, charts in PAGES.items():
            driver.get(f"{site.url}/runs/demo/{page}")
            drawn = wait_for(lambda: driver.execute_script(CHARTS_DRAWN), 60, f"the charts of {page}")
            assert drawn == str(charts), page
            assert console_errors(driver) == [], page
        driver.get(f"{site.url}/runs/demo/overview")
        wait_for(lambda: driver.execute_script(CHARTS_DRAWN), 60, "the overview's charts")
        wait_for(lambda: driver.find_element("id", "live").text == "live", 20, "the event stream")
        driver.execute_script("window.notReloaded = true;")
        bars_before = driver.find_element("css selector", "#account tbody tr td:nth-child(2)").text
        new = append_bar(demo_log)
        wait_for(lambda: driver.execute_script("return document.body.dataset.refreshed") == str(new), 30,
                 "the page to take the new bar")
        assert driver.execute_script("return window.notReloaded === true")
        assert driver.find_element("css selector", "#account tbody tr td:nth-child(2)").text == \
            f"{int(bars_before.replace(',', '')) + 1:,}"
        wait_for(lambda: driver.execute_script(CHARTS_DRAWN), 30, "the charts redrawn")
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_flatten_from_the_browser_halts_a_live_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_API_TOKEN", TOKEN)
    db = tmp_path / "live.sqlite"
    with listen("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    data = generate_market(SYMBOLS, WINDOW + 1500, 1_704_067_200_000, seed=3)
    stop_loop: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    errors: list[BaseException] = []

    async def daemon() -> None:
        stop = asyncio.Event()
        stop_loop.append((asyncio.get_running_loop(), stop))
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.4, start_index=WINDOW) as exchange:
            await run_daemon(settings_for(exchange, db, port), stop, max_bars=1500)   # stopped by the test; bars to spare on a loaded machine

    def runner() -> None:
        try:
            asyncio.run(daemon())
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    driver = chromium(tmp_path / "profile")
    try:
        def bars() -> int:
            try:
                runs = httpx.get(f"{url}/api/runs", timeout=5).json()
            except httpx.HTTPError:
                return 0
            return runs[0]["bars"] if runs else 0

        wait_for(lambda: bars() >= 5, 360, "the daemon's first bars")
        denied = httpx.post(f"{url}/api/runs/demo/commands", json={"command": "flatten"}, timeout=5)
        assert denied.status_code == 401
        driver.get(f"{url}/runs/demo/risk")
        wait_for(lambda: driver.execute_script(CHARTS_DRAWN), 240, "the risk page's charts")
        wait_for(lambda: driver.find_element("id", "live").text.startswith("live"), 80, "the event stream")
        driver.find_element("css selector", "#controls input[name=token]").send_keys(TOKEN)
        driver.find_element("css selector", "#controls input[name=note]").send_keys("browser test")
        driver.find_element("css selector", "#controls button[data-command=flatten]").click()
        wait_for(lambda: "queued" in driver.find_element("id", "control-result").text, 80, "the command queued")
        taken = wait_for(lambda: httpx.get(f"{url}/api/runs/demo/commands", timeout=5).json()[0]["taken_bar_ms"],
                         120, "the engine to take the command")
        # The page follows the bars on its own, and shows the halt.
        wait_for(lambda: "HALTED" in driver.find_element("id", "trading-state").text, 120, "the page to show HALTED")
        assert console_errors(driver) == []
        assert TOKEN not in driver.page_source
        # Orders decided at the bar that took the command fill at the next bar's open: flat from then on.
        wait_for(lambda: (httpx.get(f"{url}/api/runs", timeout=5).json()[0]["last_bar_ms"] or 0) >= taken + 2 * H,
                 120, "two more bars")
    finally:
        driver.quit()
        loop, stop = stop_loop[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
    assert not errors, errors
    with sqlite3.connect(db) as conn:
        state, reason = conn.execute("SELECT state, reason FROM risk_state WHERE bar_ms = ?", (taken,)).fetchone()
        reasons = [r for (r,) in conn.execute("SELECT reason FROM decisions WHERE bar_ms = ?", (taken,))]
        prior = conn.execute("SELECT state FROM risk_state WHERE bar_ms < ? ORDER BY bar_ms DESC LIMIT 1",
                             (taken,)).fetchone()
        targets = {t for (t,) in conn.execute("SELECT target_qty FROM decisions WHERE bar_ms = ?", (taken,))}
        held = conn.execute("SELECT COUNT(*) FROM positions WHERE bar_ms = ? AND CAST(qty AS REAL) != 0",
                            (taken + 2 * H,)).fetchone()[0]
    assert prior[0] == "ACTIVE" and state == "HALTED" and reason.startswith("operator flatten (command #1: browser test)")
    assert reasons and all("operator command #1 flatten taken" in r for r in reasons)
    assert {float(t) for t in targets} == {0.0} and held == 0
