"""Which chart a name means: the one dispatch behind ``/api/runs/{run}/figures/{name}`` and ``bot report --html``.

:func:`figure` reads what the chart needs through the :class:`~bot.web.data.TradeLogReader` and hands it to the
pure builders of :mod:`bot.web.figures`.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.reporting.review import Review
from bot.reporting.tearsheet import Tearsheet, build_tearsheet
from bot.web import figures
from bot.web.data import TradeLogReader

REVIEW_FIGURES: dict[str, Callable[[Review], figures.Figure]] = {
    "equity": figures.equity_figure, "drawdown": figures.drawdown_figure, "exposure": figures.exposure_figure,
    "reliability": figures.reliability_figure, "pit": figures.pit_figure,
    "rolling-nll": figures.rolling_nll_figure, "coverage": figures.coverage_figure,
    "monthly": figures.monthly_figure}
TEARSHEET_FIGURES: dict[str, Callable[[Tearsheet], figures.Figure]] = {
    "rolling-sharpe": figures.rolling_sharpe_figure, "rolling-volatility": figures.rolling_volatility_figure,
    "returns": figures.returns_figure}
NAMES = (*REVIEW_FIGURES, *TEARSHEET_FIGURES, "symbol", "var", "state", "latency")


class UnknownFigure(LookupError):
    """No chart of that name."""


class MissingSymbol(ValueError):
    """The symbol chart was asked for without a symbol."""


def figure(reader: TradeLogReader, run_id: str, name: str, symbol: str | None = None) -> figures.Figure:
    """The chart ``name`` of the run as a Plotly figure (``data`` and ``layout``)."""
    if name == "symbol":
        if not symbol:
            raise MissingSymbol("the symbol figure needs ?symbol=")
        candles, band = reader.candles(run_id, symbol)
        r = reader.review(run_id)
        fills = [(f.bar_ms, f.side, float(f.qty), float(f.price), f.reason) for f in r.log.fills if f.symbol == symbol]
        return figures.symbol_figure(symbol, candles, band, fills, r.log.timeframe_ms)
    if name == "latency":
        return figures.latency_figure(reader.timings(run_id))
    if name == "state":
        return figures.state_figure(reader.state_series(run_id))
    if name == "var":
        cfg = reader.config(run_id).get("risk", {}).get("var", {})
        budgets = {h: float(cfg[k]) for h, k in ((1, "budget_1"), (24, "budget_24")) if k in cfg}
        equity = {b: float(e) for b, _, e in reader.review(run_id).log.equity}
        return figures.var_figure(reader.var(run_id), equity, budgets)
    if name in REVIEW_FIGURES:
        return REVIEW_FIGURES[name](reader.review(run_id))
    if name in TEARSHEET_FIGURES:
        return TEARSHEET_FIGURES[name](build_tearsheet(reader.review(run_id)))
    raise UnknownFigure(f"no figure {name!r}; figures: {', '.join(NAMES)}")
