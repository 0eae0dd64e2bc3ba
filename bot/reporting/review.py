"""The trade-log review: a run's performance, trades, forecast quality and the gate's worth.

:func:`build_review` turns a :class:`~bot.reporting.tradelog.TradeLog` into figures with the pure
functions of :mod:`bot.analytics`; :func:`format_review` lays them out as plain text (printed by
``bot report`` after the reconciled run summary of :mod:`bot.reporting.run_report`).

Turnover = Σ |qty × price| of the fills / mean equity; time in market = share of marks holding any
position; buy-and-hold = an equal-weight hold of the traded symbols (every logged symbol when nothing
traded) from the first mark to the last, at the logged closes, without costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from bot.analytics import forecasts as fq
from bot.analytics.gate import DecisionOutcome, GateRow, gate_worth, refused_total, round_trip_cost_bps
from bot.analytics.performance import (
    Performance,
    buy_and_hold,
    drawdown_series,
    exposure_series,
    monthly_returns,
    performance,
    periods_per_year,
    time_in_market,
)
from bot.analytics.trades import RoundTrip, TradeFill, TradeStats, round_trips, trade_stats, traded_notional
from bot.numfmt import bps
from bot.reporting.run_report import format_report
from bot.reporting.tradelog import TradeLog
from bot.timefmt import utc_minute

ROLLING_WINDOW_BARS = 168


@dataclass(frozen=True, slots=True)
class SymbolLine:
    symbol: str
    pnl: Decimal
    fees: Decimal
    funding: Decimal
    liquidations: int
    turnover: float
    stats: TradeStats


@dataclass(frozen=True, slots=True)
class Review:
    log: TradeLog
    periods: float
    bar_ms: np.ndarray
    equity: np.ndarray
    drawdown: np.ndarray
    gross: np.ndarray
    net: np.ndarray
    perf: Performance | None
    bench: Performance | None
    bench_curve: np.ndarray | None       # buy-and-hold value, scaled to the starting equity
    bench_symbols: tuple[str, ...]
    time_in_market: float
    turnover: float
    trips: tuple[RoundTrip, ...]
    stats: TradeStats
    long: TradeStats
    short: TradeStats
    symbols: tuple[SymbolLine, ...]
    monthly: dict[tuple[int, int], float]
    model: str | None
    outcomes: fq.Outcomes
    quality: fq.ForecastQuality | None
    rolling: fq.RollingQuality
    buckets: tuple[fq.SigmaBucket, ...]
    gate: tuple[GateRow, ...]
    cost_bps: float


def build_review(log: TradeLog) -> Review:
    """Every figure of the review from the loaded rows."""
    tf = log.timeframe_ms
    periods = periods_per_year(tf)
    bars = np.array([b for b, _, _ in log.equity], dtype=np.int64)
    eq = np.array([float(e) for _, _, e in log.equity])
    usable = eq.size > 0 and bool(np.all(eq > 0))
    perf = performance(bars, eq, periods) if usable else None
    pos = {b: [(float(q), float(m)) for _, q, m in rows] for b, rows in log.positions.items()}
    gross, net = exposure_series(list(bars), list(eq), pos)
    fills = [TradeFill(f.symbol, f.bar_ms, f.side, f.qty, f.price, f.fee, f.reason) for f in log.fills]
    marks = {s.symbol: s.final_mark for s in log.report.symbols if s.final_mark is not None}
    trips = round_trips(fills, [(s, b, a) for b, s, a in log.funding], marks)
    mean_eq = float(np.mean(eq)) if eq.size else 0.0
    notional = traded_notional(fills)
    traded = tuple(sorted(notional)) or tuple(sorted(log.closes))
    bench_syms = tuple(s for s in traded if all(int(b) in log.closes.get(s, {}) for b in bars))
    bench = curve = None
    if bench_syms and usable:
        curve = buy_and_hold({s: [log.closes[s][int(b)] for b in bars] for s in bench_syms}) * eq[0]
        bench = performance(bars, curve, periods)
    symbols = tuple(SymbolLine(
        symbol=s.symbol, pnl=s.pnl, fees=s.fees, funding=s.funding, liquidations=s.liquidations,
        turnover=float(notional.get(s.symbol, Decimal(0))) / mean_eq if mean_eq > 0 else 0.0,
        stats=trade_stats([t for t in trips if t.symbol == s.symbol])) for s in log.report.symbols)
    model, outcomes = _outcomes(log)
    held = np.array([_held(log, int(b), str(s)) for b, s in zip(outcomes.bar_ms, outcomes.symbol)], dtype=float)
    price_move = np.array([log.closes[str(s)][int(b) + tf] - log.closes[str(s)][int(b)]
                           for b, s in zip(outcomes.bar_ms, outcomes.symbol)], dtype=float)
    return Review(
        log=log, periods=periods, bar_ms=bars, equity=eq, drawdown=drawdown_series(eq) if usable else eq * 0,
        gross=gross, net=net, perf=perf, bench=bench, bench_curve=curve, bench_symbols=bench_syms,
        time_in_market=time_in_market(gross),
        turnover=float(sum(notional.values(), Decimal(0))) / mean_eq if mean_eq > 0 else 0.0,
        trips=trips, stats=trade_stats(trips), long=trade_stats([t for t in trips if t.direction > 0]),
        short=trade_stats([t for t in trips if t.direction < 0]), symbols=symbols,
        monthly=monthly_returns(bars, eq) if usable else {},
        model=model, outcomes=outcomes, quality=fq.quality(outcomes),
        rolling=fq.rolling(outcomes, ROLLING_WINDOW_BARS, tf),
        buckets=fq.sigma_buckets(outcomes.sigma, held * price_move, held != 0, outcomes.y),
        gate=gate_worth(_decision_outcomes(log, model), round_trip_cost_bps(log.config)),
        cost_bps=round_trip_cost_bps(log.config))


def _model(log: TradeLog) -> str | None:
    """The model with the most forecasts (the one the run traded on; a run has one)."""
    counts: dict[str, int] = {}
    for _, _, m, _, _ in log.forecasts:
        counts[m] = counts.get(m, 0) + 1
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


def _outcomes(log: TradeLog) -> tuple[str | None, fq.Outcomes]:
    model = _model(log)
    rows = [(b, s, mu, sg) for b, s, m, mu, sg in log.forecasts if m == model]
    shapes = {(b, s): v for (b, s, m), v in log.shapes.items() if m == model}
    return model, fq.join_outcomes(rows, log.closes, log.timeframe_ms, shapes)


def _held(log: TradeLog, bar_ms: int, symbol: str) -> float:
    return next((float(q) for s, q, _ in log.positions.get(bar_ms, ()) if s == symbol), 0.0)


def _decision_outcomes(log: TradeLog, model: str | None) -> list[DecisionOutcome]:
    mus = {(b, s): mu for b, s, m, mu, _ in log.forecasts if m == model}
    # A scored forecast's signal is the model's own mu: the gate's worth is what that would have earned.
    mus.update({(b, s): mu_raw for b, s, m, _, mu_raw, _ in log.skill if m == model and math.isfinite(mu_raw)})
    equity = {b: float(e) for b, _, e in log.equity}
    out = []
    for d in log.decisions:
        c = log.closes.get(d.symbol, {})
        now, nxt = c.get(d.bar_ms), c.get(d.bar_ms + log.timeframe_ms)
        mu = mus.get((d.bar_ms, d.symbol))
        if now is None or nxt is None or mu is None or d.bar_ms not in equity:
            continue
        out.append(DecisionOutcome(d.bar_ms, d.symbol, d.action, d.target_qty == 0, d.reason, mu, nxt / now - 1,
                                   equity[d.bar_ms]))
    return out


# -- text ---------------------------------------------------------------------------------------------


def format_full(review: Review) -> str:
    """The reconciled run summary followed by the review."""
    return format_report(review.log.report) + format_review(review)


def format_review(r: Review) -> str:
    """The review as plain text."""
    if r.perf is None:
        return ""
    lines = ["", "Performance (risk-free 0; simple returns of the equity marks; "
             f"{r.periods:,.0f} bars a year)"]
    held = "+".join(s.split("/")[0] for s in r.bench_symbols) or "(no candles)"
    rows = [("", "strategy", f"buy & hold {held}")]
    for name, get, fmt in _PERF_ROWS:
        rows.append((name, fmt(get(r.perf)), fmt(get(r.bench)) if r.bench else "-"))
    lines += _table(rows)
    dd = r.perf.max_drawdown
    if dd is not None:
        lines.append(f"  deepest drawdown {dd.depth:.2%}: peak {utc_minute(dd.peak_ms)}, "
                     f"trough {utc_minute(dd.trough_ms)}, "
                     + (f"recovered {utc_minute(dd.recovery_ms)}" if dd.recovery_ms else "not recovered"))
    s = r.stats
    lines += [f"  time in market {r.time_in_market:.1%}, turnover {r.turnover:,.2f}x mean equity, "
              f"fees {r.log.report.fees:,.2f}, funding {r.log.report.funding:,.2f}, "
              f"liquidations {r.log.report.liquidations}",
              "", "Round trips (flat to flat, average-cost entry; closed trips only in the rates)"]
    rows = [("", "trips", "win rate", "profit factor", "expectancy", "PnL closed", "fees", "funding", "turnover")]
    for line in r.symbols:
        rows.append((line.symbol, *_stats_cells(line.stats), f"{line.fees:,.2f}", f"{line.funding:,.2f}",
                     f"{line.turnover:,.2f}x"))
    for name, st in (("long", r.long), ("short", r.short), ("all", s)):
        rows.append((name, *_stats_cells(st), "", "", ""))
    lines += _table(rows)
    lines += _forecast_lines(r) + _skill_lines(r) + _gate_lines(r)
    return "\n".join(lines) + "\n"


def skill_summary(log: TradeLog) -> list[tuple[str, str, int, float, float, list[str]]]:
    """Per (model, symbol): forecasts scored, share with skill > 0, the last skill scale, the alarms fired."""
    by: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for _, sym, m, k, _, alarm in log.skill:
        by.setdefault((m, sym), []).append((k, alarm))
    out = []
    for (m, sym), rows in sorted(by.items()):
        alarms: list[str] = []
        for _, a in rows:
            if a and (not alarms or alarms[-1] != a):
                alarms.append(a)
        out.append((m, sym, len(rows), sum(k > 0 for k, _ in rows) / len(rows), rows[-1][0], alarms))
    return out


def _skill_lines(r: Review) -> list[str]:
    summary = skill_summary(r.log)
    if not summary:
        return []
    lines = ["", "Demonstrated skill (mu = skill x the model's mu; 0: no skill shown, no trade) and skill alarms"]
    rows = [("model", "symbol", "forecasts", "with skill", "last scale", "alarms")]
    rows += [(m, sym, f"{n:,}", f"{share:.1%}", f"{last:.3f}", f"{len(alarms)}") for m, sym, n, share, last, alarms
             in summary]
    lines += _table(rows)
    for m, sym, *_, alarms in summary:
        lines += [f"  ALARM {m} {sym} {a}" for a in alarms]
    return lines


def _f(v: float | None, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


_PERF_ROWS = (
    ("total return", lambda p: p.total_return, lambda v: _f(v, "+.2%")),
    ("CAGR", lambda p: p.cagr, lambda v: _f(v, "+.2%") if v is None or abs(v) < 1e6 else f"{v:+.2e}"),
    ("volatility (ann.)", lambda p: p.volatility, lambda v: _f(v, ".2%")),
    ("Sharpe", lambda p: p.sharpe, lambda v: _f(v, ".2f")),
    ("Sortino", lambda p: p.sortino, lambda v: _f(v, ".2f")),
    ("Calmar", lambda p: p.calmar, lambda v: _f(v, ".2f") if v is None or abs(v) < 1e6 else f"{v:.2e}"),
    ("max drawdown", lambda p: p.max_drawdown.depth if p.max_drawdown else 0.0, lambda v: _f(v, ".2%")),
)


def _stats_cells(st: TradeStats) -> tuple[str, ...]:
    return (f"{st.trips}", _f(st.win_rate, ".1%"), _f(st.profit_factor, ".2f"),
            "-" if st.expectancy is None else f"{st.expectancy:,.2f}", f"{st.pnl:,.2f}")


def _forecast_lines(r: Review) -> list[str]:
    q = r.quality
    head = ["", f"Forecast quality (model {r.model or '-'}; each forecast against the next bar's log return)"]
    if q is None:
        return head + ["  no forecast has an outcome yet"]
    base = ("-" if q.baseline_nll is None else
            f"{q.baseline_nll:.4f} vs the model's {q.model_nll_same:.4f} on the same forecasts")
    lines = head + [
        f"  forecasts scored {q.n:,}; NLL {q.nll:.4f}; persistence/EWMA baseline NLL {base}",
        f"  coverage 68% interval {q.cov68:.1%}, 95% interval {q.cov95:.1%}",
        "  reliability (quantile q: observed share below it) "
        + " ".join(f"{lvl:.2f}:{obs:.2f}" for lvl, obs in q.reliability[1::2]),
        "  PIT histogram (tenths; 0.10 each when calibrated) " + " ".join(f"{h:.2f}" for h in q.pit_histogram),
        "", "PnL by sigma bucket (quintiles of sigma at decision; positions held over the next bar, before costs)"]
    rows: list[tuple[str, ...]] = [("sigma from", "to", "forecasts", "held", "mean |return|", "PnL")]
    rows += [(bps(b.lo, sign=False), bps(b.hi, sign=False), f"{b.forecasts}", f"{b.held}",
              bps(b.mean_y_abs, sign=False), f"{b.pnl:,.2f}")
             for b in r.buckets]
    return lines + _table(rows)


def _gate_lines(r: Review) -> list[str]:
    lines = ["", "The gate's worth: signals refused (flat target, mu != 0) and what following mu for one bar "
             f"with the whole equity would have earned (costs: {r.cost_bps:g} bps a round trip)"]
    if not r.gate:
        return lines + ["  no decision with an outcome yet"]
    rows = [("why", "signals", "hit rate", "mean bps", "would earn", "net of costs")]
    total = refused_total(r.gate)
    for g in (*r.gate, *((total,) if total else ())):
        rows.append((g.kind, f"{g.signals:,}", f"{g.hit_rate:.1%}", f"{g.mean_bps:+.2f}", f"{g.would_earn:,.2f}",
                     f"{g.net_of_costs:,.2f}"))
    return lines + _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in rows]

