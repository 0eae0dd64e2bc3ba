"""The dashboard's charts as Plotly figure specifications (plain dicts: ``{"data": [...], "layout": {...}}``).

Pure: each function takes what :mod:`bot.web.data` read and returns JSON-ready values; the page draws them
with plotly.js (``Plotly.react``).  Times are ISO-8601 UTC strings, which Plotly reads as dates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bot.analytics.latency import on_clock
from bot.analytics.tearsheet import MS_PER_DAY, daily_exposure
from bot.numfmt import bps, sig
from bot.reporting.review import Review
from bot.reporting.tearsheet import Tearsheet
from bot.store.rows import BarTiming
from bot.timefmt import utc_minute
from bot.web.data import BandRow, CandleRow, finite

Figure = dict[str, Any]

_UP, _DOWN, _BLUE, _GREY, _ORANGE = "#1a9850", "#d73027", "#2c7fb8", "#7f7f7f", "#f28e2b"


def iso(ms: int) -> str:
    return utc_minute(ms, label=False)


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    # The legend sits under the x axis, inside the bottom margin (outside it, it would cover what follows).
    # The title on the left: the right of the top margin holds plotly's tool bar (and a figure's buttons).
    base: dict[str, Any] = {"title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
                            "margin": {"l": 60, "r": 20, "t": 40, "b": 90}, "height": 360,
                            "legend": {"orientation": "h", "y": -0.18, "yanchor": "top"}, "hovermode": "x unified",
                            "template": "plotly_white"}
    base.update(extra)
    return base


def _floats(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [finite(float(v)) for v in values]


def equity_figure(r: Review) -> Figure:
    """Equity against an equal-weight buy-and-hold of the traded symbols, scaled to the same start; buttons switch
    the price axis between linear and log scale."""
    x = [iso(int(b)) for b in r.bar_ms]
    data: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines", "name": "strategy equity", "x": x,
                                   "y": _floats(r.equity), "line": {"color": _BLUE}}]
    if r.bench_curve is not None:
        held = "+".join(s.split("/")[0] for s in r.bench_symbols)
        data.append({"type": "scatter", "mode": "lines", "name": f"buy & hold {held}", "x": x,
                     "y": _floats(r.bench_curve), "line": {"color": _GREY, "dash": "dot"}})
    layout = _layout("Equity vs buy & hold (quote asset)", margin={"l": 60, "r": 20, "t": 64, "b": 90})
    layout["yaxis"] = {"type": "linear", "tickformat": ",.2f"}
    layout["updatemenus"] = [{
        "type": "buttons", "direction": "right", "showactive": True, "active": 0, "x": 1, "xanchor": "right",
        "y": 1.01, "yanchor": "bottom", "pad": {"r": 0, "t": 0, "b": 0}, "font": {"size": 11},
        "buttons": [{"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log scale", "method": "relayout", "args": [{"yaxis.type": "log"}]}]}]
    return {"data": data, "layout": layout}


def drawdown_figure(r: Review) -> Figure:
    x = [iso(int(b)) for b in r.bar_ms]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "drawdown", "x": x,
                      "y": _floats(-r.drawdown * 100), "fill": "tozeroy", "line": {"color": _DOWN}}],
            "layout": _layout("Drawdown from the running peak (%)", height=280)}


def exposure_figure(r: Review) -> Figure:
    """Gross and net exposure over equity: per bar over a few days, per UTC day (mean, and the day's largest gross)
    beyond, so a year of hourly bars reads as 365 steps rather than 8,760 spikes."""
    if r.bar_ms.size == 0 or int(r.bar_ms[-1] - r.bar_ms[0]) <= 3 * MS_PER_DAY:
        x = [iso(int(b)) for b in r.bar_ms]
        return {"data": [{"type": "scatter", "mode": "lines", "name": "gross", "x": x, "y": _floats(r.gross),
                          "line": {"color": _ORANGE, "shape": "hv"}},
                         {"type": "scatter", "mode": "lines", "name": "net", "x": x, "y": _floats(r.net),
                          "line": {"color": _BLUE, "shape": "hv"}}],
                "layout": _layout("Exposure / equity, per bar", height=280)}
    d = daily_exposure(r.bar_ms, r.gross, r.net)
    x = [iso(int(b)) for b in d.day_ms]
    held = [f"in the market {h:.0%} of the day" for h in d.held]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "gross, daily mean", "x": x,
                      "y": _floats(d.gross_mean), "fill": "tozeroy", "line": {"color": _ORANGE, "shape": "hv"},
                      "text": held, "hovertemplate": "%{y:.2f} (%{text})"},
                     {"type": "scatter", "mode": "lines", "name": "gross, daily max", "x": x,
                      "y": _floats(d.gross_max), "line": {"color": _ORANGE, "shape": "hv", "dash": "dot", "width": 1}},
                     {"type": "scatter", "mode": "lines", "name": "net, daily mean", "x": x, "y": _floats(d.net_mean),
                      "line": {"color": _BLUE, "shape": "hv"}}],
            "layout": _layout("Exposure / equity, per UTC day", height=280)}


def symbol_figure(symbol: str, candles: Sequence[CandleRow], band: Sequence[BandRow],
                  fills: Sequence[tuple[int, str, float, float, str]], timeframe_ms: int) -> Figure:
    """Candlesticks, fills marked, and each forecast's price band for the bar it forecasts: the close at the
    decision times exp(μ ± z68·σ) and exp(μ ± z95·σ), with the decision and its reason on hover.
    ``fills`` are (bar_ms, side, qty, price, reason)."""
    closes = {c.bar_ms: c.close for c in candles}
    data: list[dict[str, Any]] = [{
        "type": "candlestick", "name": symbol, "x": [iso(c.bar_ms) for c in candles],
        "open": [c.open for c in candles], "high": [c.high for c in candles], "low": [c.low for c in candles],
        "close": [c.close for c in candles], "increasing": {"line": {"color": _UP}},
        "decreasing": {"line": {"color": _DOWN}}, "showlegend": False}]
    rows = [b for b in band if b.bar_ms in closes and math.isfinite(b.mu) and math.isfinite(b.sigma)]
    x = [iso(b.bar_ms + timeframe_ms) for b in rows]   # the bar whose close it forecasts

    def edge(k: float, z: str) -> list[float | None]:
        return [finite(closes[b.bar_ms] * math.exp(b.mu + k * getattr(b, z) * b.sigma)) for b in rows]

    for name, z, color in (("95 % band", "z95", "rgba(44,127,184,0.12)"),
                           ("68 % band", "z68", "rgba(44,127,184,0.25)")):
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": edge(1, z), "line": {"width": 0},
                     "hoverinfo": "skip", "showlegend": False, "name": name + " top"})
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": edge(-1, z), "line": {"width": 0},
                     "fill": "tonexty", "fillcolor": color, "hoverinfo": "skip", "name": name})
    data.append({"type": "scatter", "mode": "markers", "name": "forecast (decision on hover)", "x": x,
                 "y": [finite(closes[b.bar_ms] * math.exp(b.mu)) for b in rows],
                 "marker": {"size": 4, "color": _BLUE},
                 "text": [f"μ {bps(b.mu)}, σ {bps(b.sigma, sign=False)}<br>{b.action}: {_wrap(b.reason)}"
                          for b in rows],
                 "hovertemplate": "%{text}<extra></extra>"})
    for side, symbol_shape, color in (("buy", "triangle-up", _UP), ("sell", "triangle-down", _DOWN)):
        mine = [f for f in fills if f[1] == side]
        if mine:
            data.append({"type": "scatter", "mode": "markers", "name": f"{side} fills", "x": [iso(f[0]) for f in mine],
                         "y": [f[3] for f in mine], "marker": {"symbol": symbol_shape, "size": 11, "color": color,
                                                               "line": {"width": 1, "color": "#000"}},
                         "text": [f"{side} {sig(f[2])} @ {sig(f[3])} ({f[4]})" for f in mine],
                         "hovertemplate": "%{text}<extra></extra>"})
    layout = _layout(f"{symbol}: candles, fills, forecast bands (68 %, 95 %)", height=560, hovermode="closest")
    layout["xaxis"] = {"rangeslider": {"visible": False}}
    return {"data": data, "layout": layout}


def _wrap(text: str, width: int = 90) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + len(w) > width:
            lines.append(cur)
            cur = ""
        cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "<br>".join(lines)


def var_figure(var: Sequence[tuple[int, str, int, float, float, float]], equity: dict[int, float],
               budgets: dict[int, float]) -> Figure:
    """Each method's VaR per horizon beside its budget (fraction × the equity marked at the bar)."""
    data: list[dict[str, Any]] = []
    colors = {"model": _BLUE, "historical": _ORANGE, "cornish_fisher": "#6a3d9a"}
    for h in sorted({row[2] for row in var}):
        for m in sorted({row[1] for row in var if row[2] == h}):
            rows = [row for row in var if row[1] == m and row[2] == h]
            data.append({"type": "scatter", "mode": "lines", "name": f"VaR {m} {h} bar(s)",
                         "x": [iso(r[0]) for r in rows], "y": [finite(r[4]) for r in rows],
                         "line": {"color": colors.get(m, _GREY), "dash": "solid" if h == 1 else "dot"}})
        if h in budgets:
            bars = sorted({row[0] for row in var if row[2] == h and row[0] in equity})
            data.append({"type": "scatter", "mode": "lines", "name": f"budget {h} bar(s)",
                         "x": [iso(b) for b in bars], "y": [finite(budgets[h] * equity[b]) for b in bars],
                         "line": {"color": _DOWN, "dash": "dash" if h == 1 else "dashdot"}})
    return {"data": data, "layout": _layout("VaR of the decided book against its budgets (quote asset)")}


def latency_figure(timings: Sequence[BarTiming]) -> Figure:
    """Per streamed bar, seconds from its last candle's arrival to its commit and, where the bar's close is on
    this machine's clock, from its close to its commit."""
    live = [t for t in timings if not t.late]
    clocked = [t for t in live if on_clock(t)]
    layout = _layout("Latency per bar (seconds)", height=320)
    layout["yaxis"] = {"title": {"text": "seconds"}, "rangemode": "tozero"}
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "name": "last candle → committed (processing)",
         "x": [iso(t.bar_ms) for t in live], "y": [(t.committed_ms - t.last_received_ms) / 1000 for t in live],
         "line": {"color": _BLUE}}]
    if clocked:
        data.append({"type": "scatter", "mode": "lines+markers", "name": "close → committed (total)",
                     "x": [iso(t.bar_ms) for t in clocked],
                     "y": [(t.committed_ms - t.close_ms) / 1000 for t in clocked], "line": {"color": _ORANGE}})
    return {"data": data, "layout": layout}


def state_figure(series: Sequence[tuple[int, str]]) -> Figure:
    level = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}
    layout = _layout("Trading state", height=260)
    layout["yaxis"] = {"tickvals": [0, 1, 2], "ticktext": ["ACTIVE", "REDUCING", "HALTED"], "range": [-0.3, 2.3]}
    return {"data": [{"type": "scatter", "mode": "lines", "line": {"shape": "hv", "color": _DOWN}, "name": "state",
                      "x": [iso(b) for b, _ in series], "y": [level.get(s, 0) for _, s in series]}],
            "layout": layout}


def reliability_figure(r: Review) -> Figure:
    q = r.quality
    pts = q.reliability if q else ()
    layout = _layout("Reliability: observed share below each forecast quantile", height=380, hovermode="closest")
    layout["xaxis"] = {"title": {"text": "forecast quantile q"}, "range": [0, 1]}
    layout["yaxis"] = {"title": {"text": "observed share"}, "range": [0, 1]}
    return {"data": [{"type": "scatter", "mode": "lines", "name": "calibrated", "x": [0, 1], "y": [0, 1],
                      "line": {"color": _GREY, "dash": "dot"}},
                     {"type": "scatter", "mode": "lines+markers", "name": r.model or "model",
                      "x": [p[0] for p in pts], "y": [p[1] for p in pts], "line": {"color": _BLUE}}],
            "layout": layout}


def pit_figure(r: Review) -> Figure:
    q = r.quality
    hist = q.pit_histogram if q else ()
    layout = _layout("PIT histogram (0.10 per tenth when calibrated)", height=380, hovermode="closest")
    layout["shapes"] = [{"type": "line", "x0": 0, "x1": 1, "y0": 0.1, "y1": 0.1,
                         "line": {"dash": "dot", "color": _GREY}}]
    return {"data": [{"type": "bar", "name": "share", "x": [0.05 + 0.1 * k for k in range(len(hist))],
                      "y": list(hist), "width": 0.09, "marker": {"color": _BLUE}}], "layout": layout}


def rolling_nll_figure(r: Review) -> Figure:
    x = [iso(int(b)) for b in r.rolling.bar_ms]
    return {"data": [{"type": "scatter", "mode": "lines", "name": f"model {r.model or ''}", "x": x,
                      "y": _floats(r.rolling.nll), "line": {"color": _BLUE}},
                     {"type": "scatter", "mode": "lines", "name": "EWMA baseline", "x": x,
                      "y": _floats(r.rolling.baseline_nll), "line": {"color": _GREY, "dash": "dot"}}],
            "layout": _layout("Rolling NLL (168 bars; lower is better)")}


def coverage_figure(r: Review) -> Figure:
    x = [iso(int(b)) for b in r.rolling.bar_ms]
    layout = _layout("Rolling interval coverage (168 bars)")
    layout["yaxis"] = {"range": [0, 1.02], "tickformat": ".0%"}
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
                         "line": {"dash": "dot", "color": _GREY}} for y in (0.68, 0.95)]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "68 % interval", "x": x,
                      "y": _floats(r.rolling.cov68), "line": {"color": _BLUE}},
                     {"type": "scatter", "mode": "lines", "name": "95 % interval", "x": x,
                      "y": _floats(r.rolling.cov95), "line": {"color": _ORANGE}}], "layout": layout}


# -- the tearsheet ------------------------------------------------------------------------------------


def rolling_sharpe_figure(t: Tearsheet) -> Figure:
    x = [iso(int(b)) for b in t.returns_ms]
    layout = _layout(f"Rolling Sharpe ({t.window} bars, annualised)", height=280)
    layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                         "line": {"color": _GREY, "width": 1}}]
    return {"data": [{"type": "scatter", "mode": "lines", "name": "Sharpe", "x": x,
                      "y": _floats(t.rolling_sharpe), "line": {"color": _BLUE}}], "layout": layout}


def rolling_volatility_figure(t: Tearsheet) -> Figure:
    x = [iso(int(b)) for b in t.returns_ms]
    layout = _layout(f"Rolling volatility ({t.window} bars, annualised)", height=280)
    layout["yaxis"] = {"tickformat": ".0%", "rangemode": "tozero"}
    return {"data": [{"type": "scatter", "mode": "lines", "name": "volatility", "x": x,
                      "y": _floats(t.rolling_volatility), "line": {"color": _ORANGE}}], "layout": layout}


def returns_figure(t: Tearsheet) -> Figure:
    """Histograms of the bar returns and of the UTC-day returns (buttons switch); plotly.js bins them."""
    layout = _layout("Return distribution (%)", height=320, hovermode="closest", bargap=0.05,
                     margin={"l": 60, "r": 20, "t": 64, "b": 60})
    layout["xaxis"] = {"title": {"text": "return (%)"}}
    layout["yaxis"] = {"title": {"text": "count"}}
    layout["updatemenus"] = [{
        "type": "buttons", "direction": "right", "showactive": True, "active": 0, "x": 1, "xanchor": "right",
        "y": 1.01, "yanchor": "bottom", "pad": {"r": 0, "t": 0, "b": 0}, "font": {"size": 11},
        "buttons": [{"label": "per bar", "method": "restyle", "args": [{"visible": [True, False]}]},
                    {"label": "per day", "method": "restyle", "args": [{"visible": [False, True]}]}]}]
    return {"data": [{"type": "histogram", "name": f"per bar ({t.returns.size:,})", "x": _floats(t.returns * 100),
                      "nbinsx": 60, "marker": {"color": _BLUE}},
                     {"type": "histogram", "name": f"per UTC day ({t.daily.size:,})", "x": _floats(t.daily * 100),
                      "nbinsx": 40, "marker": {"color": _ORANGE}, "visible": False}],
            "layout": layout}


def monthly_figure(r: Review) -> Figure:
    """Monthly returns, years down and months across."""
    years = sorted({y for y, _ in r.monthly})
    z: list[list[float | None]] = [[None] * 12 for _ in years]
    for (y, m), v in r.monthly.items():
        z[years.index(y)][m - 1] = finite(100 * v)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    text = [["" if v is None else f"{v:+.2f}%" for v in row] for row in z]
    layout = _layout("Monthly returns (%)", height=max(180, 110 + 40 * len(years)), hovermode="closest")
    layout["yaxis"] = {"type": "category", "autorange": "reversed"}
    return {"data": [{"type": "heatmap", "x": months, "y": [str(y) for y in years], "z": z, "text": text,
                      "texttemplate": "%{text}", "hovertemplate": "%{y} %{x}: %{text}<extra></extra>",
                      "colorscale": [[0, _DOWN], [0.5, "#ffffbf"], [1, _UP]], "zmid": 0, "showscale": False,
                      "xgap": 2, "ygap": 2}],
            "layout": layout}
