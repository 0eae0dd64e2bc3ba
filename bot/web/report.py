"""``bot report --html``: the dashboard's views of one run in one self-contained, interactive HTML file.

The sections are the dashboard's pages (:mod:`bot.web.pages`, in their ``static`` form: no operator controls, the
decision filter in the browser), and each chart is the figure the API would serve (:func:`bot.web.charts.figure`),
embedded as JSON beside plotly.js, the dashboard's script and its style, all inline: the file needs no server and
no network, so it can be mailed or archived alone.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import plotly

from bot.reporting.review import Review
from bot.reporting.tearsheet import build_tearsheet
from bot.web import charts, pages
from bot.web.data import TradeLogReader
from bot.web.html import PAGES, esc, utc

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_FIGURE_URL = re.compile(r'data-figure="([^"]*)"')
_EXTRA_STYLE = """
section { scroll-margin-top: 56px; }
nav span.brand { color: #fff; font-weight: 600; margin-right: 12px; display: inline-block; padding: 12px 10px; }
section > h2.section { font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 36px; }
"""


def render_report(reader: TradeLogReader, run_id: str, review: Review | None = None) -> str:
    """The whole file for ``run_id`` as a string."""
    r = review if review is not None else reader.review(run_id)
    status = reader.status(run_id)
    names = dict(PAGES)
    symbols = reader.symbols(run_id)
    bodies = {
        "overview": pages.overview_page(run_id, r, status),
        "tearsheet": pages.tearsheet_page(run_id, r, build_tearsheet(r), "#round-trips"),
        "symbols": ("".join(f"<h3>{esc(s)}</h3>" + pages.symbol_chart(run_id, s) for s in symbols) + pages.BAND_NOTE
                    if symbols else "<p>no candles logged yet</p>"),
        "trades": pages.trades_page(run_id, r, reader.orders(run_id), None, static=True),
        "risk": pages.risk_page(run_id, reader, status, reader.commands(run_id), False, False, static=True),
        "forecasts": pages.forecasts_page(run_id, r, status, reader.models(run_id)),
        "health": pages.health_page(run_id, status, reader.rejections(run_id), reader.timings(run_id)),
    }
    main = "".join(f'<section id="{key}"><h2 class="section">{esc(names[key])}</h2>{bodies[key]}</section>'
                   for key, _ in PAGES)
    figures = {url: _figure(reader, run_id, url) for url in dict.fromkeys(
        html.unescape(u) for u in _FIGURE_URL.findall(main))}
    nav = ['<span class="brand">sigma-bot report</span>'] + [f'<a href="#{k}">{esc(n)}</a>' for k, n in PAGES]
    title = f"Report · run {run_id}"
    subtitle = (f"{status.mode} run, bars {utc(r.log.report.start_ms)} to {utc(r.log.report.end_ms)}; "
                f"trade log {reader.path.name}; written {utc(status.now_ms)}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} · sigma-bot</title>"
        f"<style>{_read('dashboard.css')}{_EXTRA_STYLE}</style>"
        f"<script>{_inline_script(PLOTLY_JS.read_text(encoding='utf-8'))}</script>"
        f"<script type=\"application/json\" id=\"figures\">{_json(figures)}</script>"
        f"<script>{_inline_script(_read('dashboard.js'))}</script></head>"
        f"<body class=\"report\"><header><nav>{''.join(nav)}</nav></header>"
        f"<main><h1>{esc(title)}</h1><p class=sub>{esc(subtitle)}</p>{main}</main></body></html>\n")


def write_report(db_path: str | Path, run_id: str, path: str | Path, review: Review | None = None) -> Path:
    """Write :func:`render_report` to ``path`` (the trade log is opened read-only)."""
    out = Path(path)
    out.write_text(render_report(TradeLogReader(db_path), run_id, review), encoding="utf-8")
    return out


def _figure(reader: TradeLogReader, run_id: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    name = parts.path.rsplit("/", 1)[-1]
    symbol = parse_qs(parts.query).get("symbol", [None])[0]
    return charts.figure(reader, run_id, name, symbol)


def _read(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _inline_script(code: str) -> str:
    # A script element ends at the first "</script" whatever the JavaScript around it means (HTML spec, "script
    # data state"); "<\/" is the same string to JavaScript.
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def _json(value: Any) -> str:
    # JSON inside a script element: every "<" (only ever inside a string) as \u003c, so nothing in it can end or
    # comment out the element; NaN was made null by the figures.
    return json.dumps(value, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
