"""The review's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display).

Each function returns a :class:`matplotlib.figure.Figure`; :func:`png_bytes` renders one.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.reporting.review import ROLLING_WINDOW_BARS, Review

DPI = 100


def _dates(bar_ms: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(int(b) / 1000, tz=UTC) for b in bar_ms]


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def equity_drawdown(r: Review) -> Figure:
    """Equity beside buy-and-hold, and the drawdown below it."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    t = _dates(r.bar_ms)
    top.plot(t, r.equity, label="strategy", color="tab:blue")
    if r.bench_curve is not None:
        top.plot(t, r.bench_curve, label="buy & hold " + "+".join(r.bench_symbols), color="tab:gray", alpha=0.8)
    top.set_ylabel("equity")
    top.set_title(f"Run {r.log.report.run_id}: equity")
    top.legend(loc="best")
    top.grid(alpha=0.3)
    bottom.fill_between(t, -100 * r.drawdown, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    return fig


def exposure(r: Review) -> Figure:
    """Gross and net exposure over equity."""
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.subplots()
    t = _dates(r.bar_ms)
    ax.plot(t, r.gross, label="gross |exposure| / equity", color="tab:purple")
    ax.plot(t, r.net, label="net exposure / equity", color="tab:green", alpha=0.8)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_title("Exposure")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def monthly_heatmap(r: Review) -> Figure:
    """Monthly returns, years down, months across."""
    years = sorted({y for y, _ in r.monthly})
    grid = np.full((len(years), 12), np.nan)
    for (y, m), v in r.monthly.items():
        grid[years.index(y), m - 1] = 100 * v
    fig = Figure(figsize=(10, max(2.5, 1.2 + 0.5 * len(years))), layout="constrained")
    ax = fig.subplots()
    finite = grid[np.isfinite(grid)]
    lim = max(float(np.max(np.abs(finite))) if finite.size else 1.0, 1e-9)
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(years)):
        for j in range(12):
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.1f}%", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(12), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_title("Monthly returns")
    fig.colorbar(im, ax=ax, label="%")
    return fig


def forecast_over_time(r: Review) -> Figure:
    """Mean σ per bar, rolling 68/95 % coverage against nominal, rolling NLL against the EWMA baseline."""
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    ax_s, ax_c, ax_n = fig.subplots(3, 1, sharex=True)
    rq = r.rolling
    t = _dates(rq.bar_ms)
    ax_s.plot(t, rq.sigma, color="tab:orange")
    ax_s.set_ylabel("mean sigma")
    ax_s.set_title(f"Forecasts of {r.model or '-'}: sigma, coverage and NLL over {ROLLING_WINDOW_BARS}-bar windows")
    for series, nominal, color in ((rq.cov68, 0.68, "tab:blue"), (rq.cov95, 0.95, "tab:red")):
        ax_c.plot(t, series, color=color, label=f"{nominal:.0%} interval")
        ax_c.axhline(nominal, color=color, ls="--", lw=0.8)
    ax_c.set_ylim(0, 1.02)
    ax_c.set_ylabel("coverage")
    ax_c.legend(loc="lower right")
    ax_n.plot(t, rq.nll, label="model", color="tab:blue")
    ax_n.plot(t, rq.baseline_nll, label="persistence/EWMA", color="tab:gray")
    ax_n.set_ylabel("rolling NLL")
    ax_n.legend(loc="best")
    for ax in (ax_s, ax_c, ax_n):
        ax.grid(alpha=0.3)
    return fig


def reliability(r: Review) -> Figure:
    """Reliability diagram (observed share below each forecast quantile) and the PIT histogram."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="calibrated")
    q = r.quality
    if q is not None:
        left.plot([a for a, _ in q.reliability], [b for _, b in q.reliability], "o-", label="observed")
        right.bar(np.arange(10) / 10 + 0.05, q.pit_histogram, width=0.09, color="tab:blue")
    right.axhline(0.1, color="black", lw=0.8, ls="--")
    left.set_xlabel("forecast quantile q")
    left.set_ylabel("share of outcomes below it")
    left.set_title("Reliability")
    left.legend(loc="upper left")
    right.set_xlabel("PIT = Phi((y - mu) / sigma)")
    right.set_title("PIT histogram")
    return fig


def sigma_buckets(r: Review) -> Figure:
    """PnL of the positions held over the next bar, by σ quintile."""
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax = fig.subplots()
    labels = [f"{b.lo:.4f}-{b.hi:.4f}" for b in r.buckets]
    pnl = [b.pnl for b in r.buckets]
    ax.bar(range(len(pnl)), pnl, color=["tab:green" if p >= 0 else "tab:red" for p in pnl])
    ax.set_xticks(range(len(pnl)), labels)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("sigma at decision (quintile)")
    ax.set_ylabel("PnL")
    ax.set_title("PnL by sigma bucket")
    return fig


ALL = (("Equity and drawdown", equity_drawdown), ("Exposure", exposure), ("Monthly returns", monthly_heatmap),
       ("Sigma and coverage over time", forecast_over_time), ("Reliability", reliability),
       ("PnL by sigma bucket", sigma_buckets))
