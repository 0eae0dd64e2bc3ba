"""The few figures that say whether a run paid for itself, beside how good its forecasts were.

``bot backtest`` prints them after a run and ``scripts/bench_edge.py`` tabulates them; both read the
trade log through :mod:`bot.reporting.tradelog` and take every figure from :func:`build_review` (the
review ``bot report`` prints), so the three never disagree:

    net return      E_end / E_0 − 1 of the first and last equity marks (exact decimals)
    fees            Σ fee of the fills (exact); over E_0 as a share of the starting equity
    before fees     net return + fees / E_0: what the same fills would have made without their fees
                    (slippage is in the fill prices and stays; funding stays)
    bars with fill  share of the equity marks (decided bars) at which at least one order filled
    turnover        Σ |qty × price| of the fills / mean equity
    Sharpe          annualised, of the equity marks' simple returns (see bot.analytics.performance)
    NLL, coverage   of the traded model's forecasts against the next bar's log return, beside the
                    persistence/EWMA baseline's NLL on the same forecasts (bot.analytics.forecasts)
    skill alarms    the skill monitor's alarms over the run (the review's skill summary)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal, localcontext
from typing import Any

from bot.analytics.trades import TradeFill, bars_with_fill
from bot.reporting.review import Review, skill_summary

_PRECISION = 60


@dataclass(frozen=True, slots=True)
class TradingSummary:
    run_id: str
    model: str | None
    bars: int                       # equity marks (decided bars)
    equity_start: Decimal
    equity_end: Decimal
    net_return: float
    fees: Decimal
    fees_share: float               # fees / equity_start
    before_fees: float              # net_return + fees_share
    fills: int
    bars_with_fill: int
    fill_share: float               # bars_with_fill / bars
    turnover: float                 # × mean equity
    time_in_market: float
    sharpe: float | None
    max_drawdown: float
    forecasts: int                  # forecasts scored against an outcome
    nll: float | None
    baseline_nll: float | None      # persistence/EWMA on the forecasts it covers
    model_nll_same: float | None    # the model on those same forecasts
    cov68: float | None
    cov95: float | None
    buy_and_hold: float | None = None   # equal-weight hold of the traded symbols, no costs (the review's)
    skill_alarms: int = 0               # skill-monitor alarms raised (the review's skill summary)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values; Decimals as their exact strings."""
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(self).items()}


def trading_summary(r: Review) -> TradingSummary | None:
    """The summary of a reviewed run; None when it has no equity mark."""
    rep = r.log.report
    if rep.equity_start is None or rep.equity_end is None or r.perf is None or rep.equity_start <= 0:
        return None
    with localcontext(prec=_PRECISION):
        net = (rep.equity_end - rep.equity_start) / rep.equity_start
        fees_share = rep.fees / rep.equity_start
        before = net + fees_share
    fills = [TradeFill(f.symbol, f.bar_ms, f.side, f.qty, f.price, f.fee, f.reason) for f in r.log.fills]
    with_fill = bars_with_fill(fills)
    q = r.quality
    dd = r.perf.max_drawdown
    return TradingSummary(
        run_id=rep.run_id, model=r.model, bars=int(r.bar_ms.size), equity_start=rep.equity_start,
        equity_end=rep.equity_end, net_return=float(net), fees=rep.fees, fees_share=float(fees_share),
        before_fees=float(before), fills=len(fills), bars_with_fill=with_fill,
        fill_share=with_fill / r.bar_ms.size if r.bar_ms.size else 0.0, turnover=r.turnover,
        time_in_market=r.time_in_market, sharpe=r.perf.sharpe, max_drawdown=dd.depth if dd else 0.0,
        forecasts=q.n if q else 0, nll=q.nll if q else None, baseline_nll=q.baseline_nll if q else None,
        model_nll_same=q.model_nll_same if q else None, cov68=q.cov68 if q else None,
        cov95=q.cov95 if q else None, buy_and_hold=r.bench.total_return if r.bench else None,
        skill_alarms=sum(len(alarms) for *_, alarms in skill_summary(r.log)))


def format_summary(s: TradingSummary) -> list[str]:
    """The summary as a few lines of text."""
    sharpe = "-" if s.sharpe is None else f"{s.sharpe:.2f}"
    lines = [
        f"net return {s.net_return:+.2%} (equity {s.equity_start} -> {s.equity_end}), before fees "
        f"{s.before_fees:+.2%}; Sharpe {sharpe}; max drawdown {s.max_drawdown:.2%}"
        + ("" if s.buy_and_hold is None else f"; buy & hold {s.buy_and_hold:+.2%}"),
        f"fees {s.fees} = {s.fees_share:.2%} of the starting equity; {s.fills} fills on {s.bars_with_fill} of "
        f"{s.bars} bars ({s.fill_share:.2%}); turnover {s.turnover:.2f}x mean equity; time in market "
        f"{s.time_in_market:.1%}",
    ]
    if s.nll is None:
        lines.append("forecasts: none scored")
    else:
        base = ("" if s.baseline_nll is None or s.model_nll_same is None else
                f"; persistence/EWMA {s.baseline_nll:.4f} vs the model's {s.model_nll_same:.4f} on the same forecasts")
        lines.append(f"forecasts ({s.model}): {s.forecasts} scored, NLL {s.nll:.4f}{base}; coverage 68% "
                     f"{s.cov68:.2%}, 95% {s.cov95:.2%}"
                     + (f"; skill alarms {s.skill_alarms} (see bot report)" if s.skill_alarms else ""))
    return lines
