"""``bot report --html``: one self-contained file with the dashboard's views and the tearsheet, checked as HTML and
in a real headless browser (Debian chromium through Selenium; that part skips, with the reason, without one)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import CHARTS_DRAWN, chromium, console_errors, missing

from bot.cli import main
from bot.web.html import PAGES


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self._cell: list[str] | None = None
        self.cells: dict[str, list[list[str]]] = {}      # table id: rows of cell texts
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "table":
            self._table = str(a.get("id") or "")
            self.cells[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.cells[self._table].append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.cells[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(backtest_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", "--db", str(backtest_log), "--html", str(out)]) == 0
    return out


def equity(db: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(db) as conn:
        return [(int(b), float(Decimal(e))) for b, e in
                conn.execute("SELECT bar_ms, equity FROM equity WHERE run_id = 'bt' ORDER BY bar_ms")]


def test_the_file_needs_no_network_and_holds_every_view(report: Path, backtest_log: Path) -> None:
    text = report.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    scripts = [a for tag, a in page.tags if tag == "script"]
    assert len(scripts) == 3 and all("src" not in a for a in scripts)     # plotly.js, the figures, the page script
    assert not [a for tag, a in page.tags if tag == "link" and re.match(r"https?:", str(a.get("href", "")))]
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    # Every page of the dashboard is a section; the figures of all their charts are embedded.
    assert {key for key, _ in PAGES} <= page.ids
    figures = json.loads(re.search(r'<script type="application/json" id="figures">(.*?)</script>', text, re.S)[1])
    placeholders = {a["data-figure"] for _, a in page.tags if a.get("data-figure")}
    assert placeholders == set(figures) and len(figures) == 15     # overview and tearsheet share three
    assert {u.rsplit("/", 1)[1].split("?")[0] for u in figures} >= {
        "equity", "drawdown", "exposure", "symbol", "rolling-sharpe", "rolling-volatility", "returns", "monthly",
        "var", "state", "reliability", "pit", "rolling-nll", "coverage"}
    # Key figures are real tables; the per-trade table holds every round trip.
    for table in ("performance", "account", "trade-summary", "return-summary", "drawdowns", "round-trips",
                  "decisions-table", "fills", "health", "sessions"):
        assert table in page.cells, table
    with sqlite3.connect(backtest_log) as conn:
        fills = conn.execute("SELECT COUNT(*) FROM fills WHERE run_id = 'bt'").fetchone()[0]
    assert len(page.cells["fills"]) - 1 == fills        # header row, then one per fill
    # The deepest drawdown row agrees with the equity curve worked out here.
    rows = equity(backtest_log)
    peak, deepest = rows[0][1], 0.0
    for _, e in rows:
        peak = max(peak, e)
        deepest = max(deepest, 1 - e / peak)
    first = page.cells["drawdowns"][1]
    assert first[0] == "1" and first[1] == f"{deepest:.2%}"
    assert len(page.cells["drawdowns"]) - 1 == 5
    # No operator controls and no server-side filter form in a file.
    assert "controls" not in page.ids and 'method="get"' not in text


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_the_file_renders_in_a_browser_and_the_log_scale_toggle_works(report: Path, tmp_path: Path) -> None:
    driver = chromium(tmp_path / "profile")
    try:
        driver.get(report.as_uri())
        deadline = time.monotonic() + 90
        while not (drawn := driver.execute_script(CHARTS_DRAWN)):
            assert time.monotonic() < deadline, "the charts were not drawn"
            time.sleep(0.2)
        assert int(drawn) == len(driver.find_elements("css selector", "[data-figure]")) == 18
        assert console_errors(driver) == []
        # Nothing was fetched over a network.
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert [u for u in fetched if not u.startswith(("file:", "data:"))] == []

        chart = driver.find_element("css selector", '#tearsheet [data-figure$="/figures/equity"]')
        axis = "return arguments[0]._fullLayout.yaxis.type"
        assert driver.execute_script(axis, chart) == "linear"
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chart)
        buttons = chart.find_elements("css selector", "g.updatemenu-button")
        assert [b.text for b in buttons] == ["linear", "log scale"]
        buttons[1].click()
        deadline = time.monotonic() + 10
        while driver.execute_script(axis, chart) != "log":
            assert time.monotonic() < deadline, "the log-scale button did not switch the axis"
            time.sleep(0.1)
        buttons = chart.find_elements("css selector", "g.updatemenu-button")
        buttons[0].click()
        deadline = time.monotonic() + 10
        while driver.execute_script(axis, chart) != "linear":
            assert time.monotonic() < deadline, "the linear button did not switch back"
            time.sleep(0.1)

        # The decision filter works without a server: rows of other kinds are hidden.
        select = driver.find_element("css selector", "select[data-filter]")
        options = select.find_elements("tag name", "option")
        assert len(options) >= 2
        kind = options[1].get_attribute("value")
        options[1].click()
        shown = driver.execute_script(
            "return Array.from(document.querySelectorAll('#decisions-table tbody tr'))"
            ".filter(r => !r.hidden).map(r => r.dataset.kind)")
        assert shown and set(shown) == {kind}
        assert console_errors(driver) == []
    finally:
        driver.quit()
