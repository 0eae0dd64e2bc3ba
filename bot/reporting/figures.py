"""``bot report --png``: the equity and drawdown figure, drawn with matplotlib's object API on the Agg canvas (no
pyplot, no display).  The interactive charts of ``--html`` and the dashboard are Plotly's (:mod:`bot.web.figures`).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.reporting.review import Review

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
