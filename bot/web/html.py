"""Small HTML building blocks: escaped cells, real tables (sortable by a click on the header), the page shell."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import quote

from bot.numfmt import money as fmt_money
from bot.numfmt import sig
from bot.timefmt import format_duration, utc_minute

Cell = str | tuple[str, object]    # text, or (text, sort key)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def utc(ms: int | None) -> str:
    return utc_minute(ms)


def duration(ms: int | None) -> str:
    """``bot status``'s spelling of a duration (``3d 4h``, ``2h 5m``), ``-`` for none."""
    return "-" if ms is None else format_duration(ms)


def money(d: Decimal | float | None) -> str:
    return fmt_money(d)


def num(d: Decimal | float | None, spec: str = "") -> str:
    """``spec`` applied, or six significant digits (:func:`bot.numfmt.sig`) without one."""
    if d is None or (isinstance(d, float) and not math.isfinite(d)):
        return "-"
    return format(d, spec) if spec else sig(d)


def pct(x: float | None, spec: str = "+.2%") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, spec)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, sortable: bool = False, caption: str = "",
          table_id: str = "", row_attrs: Sequence[str] | None = None) -> str:
    """A real ``<table>``; a cell given as (text, key) sorts by key (numbers, times) rather than by its text."""
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for c in row:
            if isinstance(c, tuple):
                text, key = c
                cells.append(f'<td data-sort="{esc(key)}">{esc(text)}</td>')
            else:
                cells.append(f"<td>{esc(c)}</td>")
        extra = f" {row_attrs[i]}" if row_attrs else ""
        body.append(f"<tr{extra}>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}" class="empty">none</td></tr>')
    return f"<table{attrs}{cls}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def chart(url: str, label: str, tall: bool = False) -> str:
    """A placeholder plotly.js fills from ``url`` (a figure of the JSON API)."""
    return (f'<div class="chart{" tall" if tall else ""}" role="img" aria-label="{esc(label)}" '
            f'data-figure="{esc(url)}"></div>')


PAGES = (("overview", "Overview"), ("tearsheet", "Tearsheet"), ("symbols", "Symbols"), ("trades", "Trades"),
         ("risk", "Risk"), ("forecasts", "Forecast quality"), ("health", "Health"))


def run_url(run_id: str, page: str = "") -> str:
    return f"/runs/{quote(run_id, safe='')}" + (f"/{page}" if page else "")


def shell(title: str, body: str, *, run_id: str | None = None, page: str = "", live_url: str = "",
          subtitle: str = "") -> str:
    """The whole page: navigation, the live-update indicator, the content in ``<main>``, the scripts."""
    nav = ['<a href="/" class="brand">sigma-bot</a>', '<a href="/">Runs</a>']
    if run_id is not None:
        for key, name in PAGES:
            current = ' aria-current="page"' if key == page else ""
            nav.append(f'<a href="{esc(run_url(run_id, key))}"{current}>{esc(name)}</a>')
    run_attr = f' data-events="{esc(live_url)}"' if live_url else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} · sigma-bot</title><link rel=\"icon\" href=\"data:,\">"
        "<link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
        "<script src=\"/static/plotly.min.js\" defer></script>"
        "<script src=\"/static/dashboard.js\" defer></script></head>"
        f"<body{run_attr}><header><nav>{''.join(nav)}</nav>"
        "<span id=\"live\" class=\"live\" title=\"updates on each new bar\">static</span></header>"
        f"<main><h1>{esc(title)}</h1>{f'<p class=sub>{esc(subtitle)}</p>' if subtitle else ''}{body}</main>"
        "</body></html>\n")
