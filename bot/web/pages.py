"""The dashboard's pages: tables rendered here, charts left as placeholders the browser fills from the JSON API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from urllib.parse import quote, urlencode

import numpy as np

from bot.analytics.gate import refusal_kind, refused_total
from bot.analytics.latency import Spread, summarize
from bot.analytics.trades import RoundTrip
from bot.numfmt import bps, latency
from bot.reporting.models import held_out, swaps
from bot.reporting.review import _PERF_ROWS, Review, skill_summary
from bot.reporting.status import Status
from bot.reporting.tearsheet import Tearsheet
from bot.store.models import ModelVersion
from bot.store.rows import BarTiming
from bot.web.data import CommandRow, OrderRow, RunSummary, TradeLogReader
from bot.web.html import chart, duration, esc, money, num, pct, run_url, table, utc

ROWS_SHOWN = 500   # newest decisions, orders and fills on the trades page (the API pages through all)


def _api(run_id: str, tail: str) -> str:
    return f"/api/runs/{quote(run_id, safe='')}/{tail}"


def runs_page(runs: list[RunSummary]) -> str:
    rows = []
    for r in runs:
        ret = (float(r.equity_end / r.equity_start - 1) if r.equity_start and r.equity_end is not None else None)
        rows.append([f'<a href="{esc(run_url(r.run_id, "overview"))}">{esc(r.run_id)}</a>', esc(r.mode),
                     esc(utc(r.created_ms)), esc(r.sessions), "running (or died)" if r.running else "ended",
                     f"{r.bars:,}", esc(utc(r.first_bar_ms)), esc(utc(r.last_bar_ms)), esc(money(r.equity_start)),
                     esc(money(r.equity_end)), esc(pct(ret))])
    head = "".join(f"<th scope=col>{h}</th>" for h in ("Run", "Mode", "Created", "Sessions", "Latest session",
                                                         "Bars", "First bar", "Last bar", "Equity start",
                                                         "Equity now", "Return"))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = '<tr><td colspan="11" class="empty">no runs in this trade log yet</td></tr>'
    return f'<table id="runs" class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def overview_page(run_id: str, r: Review, s: Status) -> str:
    rep = r.log.report
    parts = []
    if r.perf is None:
        return "<p>No bars written yet for this run: nothing to show.</p>"
    held = "+".join(x.split("/")[0] for x in r.bench_symbols) or "-"
    perf_rows = [[name, fmt(get(r.perf)), fmt(get(r.bench)) if r.bench else "-"] for name, get, fmt in _PERF_ROWS]
    dd = r.perf.max_drawdown
    account = [
        ["bars", f"{rep.bars:,}"], ["first bar", utc(rep.start_ms)], ["last bar", utc(rep.end_ms)],
        ["equity start", money(rep.equity_start)], ["equity now", money(rep.equity_end)],
        ["cash now", money(rep.cash_end)], ["return", pct(float(rep.total_return_pct or 0) / 100)],
        ["deepest drawdown", "-" if dd is None else f"{dd.depth:.2%}: peak {utc(dd.peak_ms)}, trough "
         f"{utc(dd.trough_ms)}, " + (f"recovered {utc(dd.recovery_ms)}" if dd.recovery_ms else "not recovered")],
        ["fills", f"{rep.trades:,} ({rep.liquidations:,} liquidations)"], ["fees", money(rep.fees)],
        ["funding", money(rep.funding)], ["time in market", pct(r.time_in_market, ".1%")],
        ["turnover", f"{r.turnover:,.2f}x mean equity"],
        ["trading state now", s.trading.state if s.trading else "-"],
    ]
    parts.append('<div class="grid">')
    parts.append(table(("figure", "strategy", f"buy & hold {held}"), perf_rows, caption="Performance "
                       f"(risk-free 0, {r.periods:,.0f} bars a year)", table_id="performance"))
    parts.append(table(("account", "value"), account, caption="Account", table_id="account"))
    parts.append("</div>")
    parts.append(chart(_api(run_id, "figures/equity"), "equity against buy and hold"))
    parts.append(chart(_api(run_id, "figures/drawdown"), "drawdown"))
    parts.append(chart(_api(run_id, "figures/exposure"), "exposure"))
    sym_rows = [[x.symbol, (f"{x.stats.trips}", x.stats.trips), pct(x.stats.win_rate, ".1%"),
                 (money(x.fees), float(x.fees)), (money(x.funding), float(x.funding)),
                 (str(x.liquidations), x.liquidations),
                 (f"{x.turnover:,.2f}x", x.turnover), (money(x.pnl), float(x.pnl))] for x in r.symbols]
    parts.append(table(("symbol", "closed trips", "win rate", "fees", "funding", "liquidations", "turnover", "PnL"),
                       sym_rows, sortable=True, caption="Per symbol (PnL realised + unrealised, to the last unit)",
                       table_id="symbols"))
    checks = [["ok" if c.ok else "FAIL", c.name, c.detail] for c in rep.checks]
    parts.append(table(("", "reconciliation check", "detail"), checks, caption="Reconciliation", table_id="checks"))
    return "".join(parts)


def symbols_page(run_id: str, symbols: list[str], chosen: str | None) -> str:
    links = " ".join(
        f'<a class="pill{" on" if s == chosen else ""}" href="{esc(run_url(run_id, "symbols"))}?'
        f'{esc(urlencode({"symbol": s}))}">{esc(s)}</a>' for s in symbols)
    if chosen is None:
        return f"<p>{links or 'no candles logged yet'}</p>"
    return f"<p>{links}</p>" + symbol_chart(run_id, chosen) + BAND_NOTE


BAND_NOTE = ("<p class=sub>Band: the forecast made at a bar's close for the next bar, drawn at that next bar: "
             "close × exp(μ ± z68·σ) and close × exp(μ ± z95·σ), with the calibrated z68, z95 the trade log "
             "holds (0.9945 and 1.96 in logs older than schema 3). Hover a forecast dot for the decision and "
             "its reason.</p>")


def symbol_chart(run_id: str, symbol: str) -> str:
    url = _api(run_id, "figures/symbol") + "?" + urlencode({"symbol": symbol})
    return chart(url, f"{symbol} candles with fills and forecast bands", tall=True)


def tearsheet_page(run_id: str, r: Review, t: Tearsheet, trades_href: str) -> str:
    """Trade statistics, the deepest drawdowns, rolling ratios, the return distribution, exposure by day."""
    if r.perf is None:
        return "<p>No bars written yet for this run: nothing to show.</p>"
    s, st = t.trips, r.stats

    def trip_text(trip: RoundTrip | None, what: str) -> str:
        if trip is None:
            return "-"
        side = "long" if trip.direction > 0 else "short"
        figure = money(trip.pnl) if what == "pnl" else duration((trip.close_ms or trip.open_ms) - trip.open_ms)
        return f"{figure}: {trip.symbol} {side}, {utc(trip.open_ms)} to {utc(trip.close_ms)}"

    trades = [["closed round trips", f"{s.closed:,}"], ["win rate", pct(st.win_rate, ".1%")],
              ["profit factor", num(st.profit_factor, ",.2f")], ["expectancy a trip", money(st.expectancy)],
              ["average duration", duration(None if s.avg_duration_ms is None else round(s.avg_duration_ms))],
              ["longest", trip_text(s.longest, "duration")], ["best trip", trip_text(s.best, "pnl")],
              ["worst trip", trip_text(s.worst, "pnl")],
              ["longest winning streak", f"{s.win_streak:,} trips in a row"],
              ["longest losing streak", f"{s.loss_streak:,} trips in a row"]]
    rets = t.returns
    bars_a_day = max(1, round(86_400_000 / r.log.timeframe_ms))
    returns = [["bars", f"{rets.size:,} returns, {pct(float((rets > 0).mean()) if rets.size else None, '.1%')} "
                "of them up"],
               ["best bar / worst bar", f"{pct(_max(rets))} / {pct(_min(rets))}"],
               ["UTC days", f"{t.daily.size:,}, {pct(float((t.daily > 0).mean()) if t.daily.size else None, '.1%')} "
                "of them up"],
               ["best day / worst day", f"{pct(_max(t.daily))} / {pct(_min(t.daily))}"],
               [f"rolling Sharpe now ({t.window} bars)", num(_last(t.rolling_sharpe), ",.2f")],
               [f"rolling volatility now ({t.window} bars)", pct(_last(t.rolling_volatility), ".2%")]]
    if bars_a_day == 1:
        returns = [row for row in returns if not row[0].startswith(("UTC days", "best day"))]
    dds = [[str(i), (pct(p.depth, ".2%"), p.depth), (utc(p.peak_ms), p.peak_ms), (utc(p.valley_ms), p.valley_ms),
            (utc(p.recovery_ms), p.recovery_ms) if p.recovery_ms is not None else ("not yet", 2**62),
            (duration(p.length_ms), p.length_ms), (f"{p.bars_under:,}", p.bars_under)]
           for i, p in enumerate(t.drawdowns, 1)]
    return "".join([
        '<div class="grid">',
        table(("trades", "value"), trades, table_id="trade-summary",
              caption="Trades (closed round trips, in closing order)"),
        table(("returns", "value"), returns, table_id="return-summary",
              caption="Returns (simple returns of the equity marks; days by UTC)"),
        "</div>",
        f'<p class=sub>Every trip with its entry, exit, duration, fees and PnL: <a href="{esc(trades_href)}">'
        "the round-trip table</a>.</p>",
        table(("#", "depth", "peak", "valley", "recovered", "length", "bars under water"), dds, sortable=True,
              table_id="drawdowns", caption="The five deepest drawdowns (peak to recovery; length to the last bar "
                                            "when not recovered)"),
        chart(_api(run_id, "figures/equity"), "equity against buy and hold, linear or log scale"),
        chart(_api(run_id, "figures/drawdown"), "drawdown"),
        '<div class="grid">',
        chart(_api(run_id, "figures/rolling-sharpe"), "rolling Sharpe ratio"),
        chart(_api(run_id, "figures/rolling-volatility"), "rolling volatility"),
        "</div>",
        chart(_api(run_id, "figures/returns"), "return distribution"),
        chart(_api(run_id, "figures/exposure"), "exposure per day"),
        chart(_api(run_id, "figures/monthly"), "monthly returns"),
    ])


def _max(x: np.ndarray) -> float | None:
    return float(x.max()) if x.size else None


def _min(x: np.ndarray) -> float | None:
    return float(x.min()) if x.size else None


def _last(x: np.ndarray) -> float | None:
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else None


def trades_page(run_id: str, r: Review, orders: list[OrderRow], kind: str | None, static: bool = False) -> str:
    """The trades page; ``static`` (a file, no server): the reason filter hides rows in the browser instead."""
    trips = [[t.symbol, "long" if t.direction > 0 else "short", (utc(t.open_ms), t.open_ms),
              (utc(t.close_ms), t.close_ms or 0) if t.close_ms else ("open", 2**62),
              (duration((t.close_ms or r.log.report.end_ms or t.open_ms) - t.open_ms),
               (t.close_ms or r.log.report.end_ms or t.open_ms) - t.open_ms),
              (num(t.qty), float(t.qty)), (num(t.entry_price), float(t.entry_price)),
              ("-" if t.exit_price is None else num(t.exit_price), float(t.exit_price or 0)),
              (money(t.fees), float(t.fees)), (money(t.funding), float(t.funding)), (money(t.pnl), float(t.pnl)),
              "liquidated" if t.liquidated else ""] for t in r.trips]
    stats = [[name, str(st.trips), pct(st.win_rate, ".1%"), num(st.profit_factor, ".2f"),
              money(st.expectancy), money(st.pnl), money(st.avg_win), money(st.avg_loss)]
             for name, st in (("long", r.long), ("short", r.short), ("all", r.stats))]
    kinds = Counter(refusal_kind(d.reason) if d.action == "none" else d.action for d in r.log.decisions)
    decisions = [d for d in r.log.decisions
                 if kind is None or (refusal_kind(d.reason) if d.action == "none" else d.action) == kind]
    options = ['<option value="">all reasons</option>'] + [
        f'<option value="{esc(k)}"{" selected" if k == kind else ""}>{esc(k)} ({n:,})</option>'
        for k, n in kinds.most_common()]
    shown = decisions[-ROWS_SHOWN:][::-1]
    dec_rows = [[(utc(d.bar_ms), d.bar_ms), d.symbol, d.action, num(d.target_qty), d.reason] for d in shown]
    dec_kinds = [f'data-kind="{esc(refusal_kind(d.reason) if d.action == "none" else d.action)}"' for d in shown]
    if static:
        kinds = Counter(refusal_kind(d.reason) if d.action == "none" else d.action for d in shown)
        options = ['<option value="">all reasons</option>'] + [
            f'<option value="{esc(k)}">{esc(k)} ({n:,})</option>' for k, n in kinds.most_common()]
        form = (f'<h2 id="decisions">Decisions</h2><p class="filter"><label>reason <select '
                f'data-filter="decisions-table">{"".join(options)}</select></label></p>')
    else:
        form = (f'<h2 id="decisions">Decisions</h2><form method="get" action="#decisions" class="filter">'
                f'<label>reason <select name="kind" onchange="this.form.submit()">{"".join(options)}</select></label>'
                f"<noscript><button>filter</button></noscript></form>")
    fills = r.log.fills[-ROWS_SHOWN:][::-1]
    fill_rows = [[(utc(f.bar_ms), f.bar_ms), f.symbol, f.side, (num(f.qty), float(f.qty)),
                  (num(f.price), float(f.price)), (money(f.fee), float(f.fee)), f.reason, f.order_id] for f in fills]
    order_rows = [[(utc(o.bar_ms), o.bar_ms), o.symbol, o.side, o.type, (num(o.qty), float(o.qty)), num(o.leverage),
                   o.status, o.status_reason or ""] for o in orders[-ROWS_SHOWN:][::-1]]
    return "".join([
        table(("", "closed trips", "win rate", "profit factor", "expectancy", "PnL closed", "avg win", "avg loss"),
              stats, caption="Round-trip statistics", table_id="trip-stats"),
        table(("symbol", "side", "entry", "exit", "duration", "max qty", "entry price", "exit price", "fees",
               "funding", "PnL", ""), trips, sortable=True, table_id="round-trips",
              caption=f"Round trips ({len(trips):,}; flat to flat, average-cost entry; click a header to sort)"),
        form,
        table(("bar", "symbol", "action", "target qty", "reason"), dec_rows, sortable=True, table_id="decisions-table",
              row_attrs=dec_kinds,
              caption=f"{len(decisions):,} decision(s)" + (f" ({kind})" if kind else "")
              + (f", newest {ROWS_SHOWN} shown" if len(decisions) > ROWS_SHOWN else "")),
        table(("bar", "symbol", "side", "type", "qty", "leverage", "status", "why"), order_rows, sortable=True,
              table_id="orders", caption=f"Orders ({len(orders):,}; newest first)"),
        table(("filled at", "symbol", "side", "qty", "price", "fee", "reason", "order"), fill_rows, sortable=True,
              table_id="fills", caption=f"Fills ({len(r.log.fills):,}; newest first)"),
    ])


def risk_page(run_id: str, reader: TradeLogReader, s: Status, commands: list[CommandRow], controls: bool,
              commands_table: bool, static: bool = False) -> str:
    """The risk page; ``static`` (a file, no server): no operator controls."""
    t = s.trading
    now = ("no trading state logged yet" if t is None else
           f"{t.state}" + ("" if t.since_bar_ms is None else f" since {utc(t.since_bar_ms)}") + f": {t.reason}")
    states = reader.states(run_id)
    steps = reader.deleverage(run_id)
    parts = [f'<p class="state state-{esc(t.state if t else "none")}" id="trading-state">Trading state: '
             f"<strong>{esc(now)}</strong></p>",
             chart(_api(run_id, "figures/var"), "VaR against its budgets"),
             chart(_api(run_id, "figures/state"), "trading state over time"),
             table(("from bar", "state", "reason"), [[(utc(b), b), st, why] for b, st, why in states[-200:][::-1]],
                   caption="Trading-state changes (newest first)", table_id="state-changes", sortable=True),
             table(("bar", "step", "symbol", "exposure before", "after", "VaR before", "after"),
                   [[(utc(b), b), str(k), sym, num(eb, ",.2f"), num(ea, ",.2f"), num(vb, ",.2f"), num(va, ",.2f")]
                    for b, k, sym, eb, ea, vb, va in steps[-500:][::-1]],
                   caption=f"Deleveraging steps ({len(steps):,})", table_id="deleverage", sortable=True),
             table(("#", "sent", "command", "note", "taken at bar"),
                   [[str(c.command_id), utc(c.created_ms), c.command, c.note,
                     "waiting for the next bar" if c.taken_bar_ms is None else utc(c.taken_bar_ms)]
                    for c in commands[::-1]], caption="Operator commands", table_id="commands")]
    if not static:
        parts.append(_controls(run_id, controls, commands_table))
    return "".join(parts)


def _controls(run_id: str, enabled: bool, commands_table: bool) -> str:
    if not commands_table:
        return ("<p class=sub>Operator controls: this trade log has no commands table (written by an older "
                "daemon); a daemon of this version adds it when it opens the log.</p>")
    if not enabled:
        return ("<p class=sub>Operator controls are off: start <code>bot serve</code> (or the daemon's "
                "<code>[api]</code>) with <code>BOT_API_TOKEN</code> set in its environment to enable them.</p>")
    buttons = "".join(f'<button type="button" data-command="{c}">{label}</button>'
                      for c, label in (("stop-entries", "Stop new entries"), ("flatten", "Flatten"),
                                       ("resume", "Resume")))
    return (f'<form id="controls" class="controls" data-url="{esc(_api(run_id, "commands"))}" '
            'onsubmit="return false"><h2>Operator controls</h2><p class=sub>Taken by the engine at its next bar and '
            "logged with the decisions. Stop new entries: only orders that shrink positions. Flatten: halt, close "
            "every position, no new entries. Resume: lift both (a drawdown or calibration halt stays).</p>"
            '<label>API token <input type="password" name="token" autocomplete="off" required></label>'
            f'<label>note <input type="text" name="note" maxlength="200"></label>{buttons}'
            '<output id="control-result"></output></form>')


def forecasts_page(run_id: str, r: Review, s: Status, versions: Sequence[ModelVersion] = ()) -> str:
    q = r.quality
    if q is None:
        summary = "<p>No forecast has an outcome yet.</p>"
    else:
        rows = [["forecasts scored", f"{q.n:,}"], ["model NLL", f"{q.nll:.4f}"],
                ["EWMA baseline NLL (same forecasts)", "-" if q.baseline_nll is None else
                 f"{q.baseline_nll:.4f} vs the model's {q.model_nll_same:.4f}"],
                ["68 % interval coverage", f"{q.cov68:.1%}"], ["95 % interval coverage", f"{q.cov95:.1%}"]]
        summary = table(("model " + (r.model or "-"), "value"), rows, caption="Forecast quality (each forecast "
                        "against the next bar's log return)", table_id="quality")
    skill = [[m, sym, f"{n:,}", pct(share, ".1%"), f"{last:.3f}", "; ".join(alarms) or "none"]
             for m, sym, n, share, last, alarms in skill_summary(r.log)]
    now = [[k.symbol, k.model, utc(k.bar_ms), f"{k.skill:.3f}", bps(k.mu_raw), bps(k.mu),
            k.alarm or "none"] for k in s.skill]
    buckets = [[bps(b.lo, sign=False), bps(b.hi, sign=False), str(b.forecasts), str(b.held),
                bps(b.mean_y_abs, sign=False), money(b.pnl)]
               for b in r.buckets]
    total = refused_total(r.gate)
    gate = [[g.kind, f"{g.signals:,}", pct(g.hit_rate, ".1%"), f"{g.mean_bps:+.2f}", money(g.would_earn),
             money(g.net_of_costs)] for g in (*r.gate, *((total,) if total else ()))]
    return "".join([
        '<div class="grid">', summary, "</div>",
        '<div class="grid">', chart(_api(run_id, "figures/reliability"), "reliability diagram"),
        chart(_api(run_id, "figures/pit"), "PIT histogram"), "</div>",
        chart(_api(run_id, "figures/rolling-nll"), "rolling NLL against the EWMA baseline"),
        chart(_api(run_id, "figures/coverage"), "rolling coverage"),
        table(("model", "symbol", "forecasts", "with skill", "last scale", "alarms"), skill, table_id="skill",
              caption="Demonstrated skill (forecasts.skill: mu = skill × the model's mu; 0: no trade) and the skill "
                      "monitor's alarms (forecasts.alarm)"),
        table(("symbol", "model", "bar", "scale", "model mu", "traded mu", "alarm"), now, table_id="skill-now",
              caption="Each symbol's latest scored forecast"),
        table(("sigma from", "to", "forecasts", "held", "mean |return|", "PnL"), buckets, table_id="sigma-buckets",
              caption="PnL by sigma quintile (positions held over the next bar, before costs)"),
        table(("why", "signals", "hit rate", "mean bps", "would earn", "net of costs"), gate, table_id="gate",
              caption=f"The gate's worth: refused signals and what following mu for one bar would have earned "
                      f"(costs {r.cost_bps:g} bps a round trip)"),
        models_tables(versions),
    ])


def models_tables(versions: Sequence[ModelVersion]) -> str:
    """The model versions (the models table: retrains, walk-forward refits) and the swaps between them."""
    if not versions:
        return ""
    rows = [[f"v{m.version}", m.kind, m.status, m.trigger,
             "as configured" if m.train_from_ms is None else f"{utc(m.train_from_ms)} → {utc(m.train_to_ms)}",
             "-" if m.train_seconds is None else f"{m.train_seconds:.1f} s on {m.device or '?'}",
             held_out(m), m.reason or "-",
             "-" if m.first_bar_ms is None else f"{utc(m.first_bar_ms)} → {utc(m.last_bar_ms)}"]
            for m in versions]
    swapped = [[utc(bar), f"v{a} → v{b}"] for bar, a, b in swaps(versions)]
    return (table(("version", "model", "status", "trigger", "trained on", "training", "held-out scores (new vs "
                   "serving)", "why", "served"), rows, table_id="models",
                  caption="Model versions (retrains and walk-forward refits: the models table)")
            + (table(("bar", "swap"), swapped, table_id="swaps", caption="Swaps: the first bar each new version "
                     "decided") if swapped else ""))


def health_page(run_id: str, s: Status, rejections: list[tuple[int, str, str, int, int, str]],
                timings: list[BarTiming]) -> str:
    age = s.bar_age_ms
    cur = s.latest_session
    facts = [["last bar", utc(s.last_bar_ms)],
             ["last bar's age", duration(age) + ("  STALE: no bar for over two bar periods" if s.stale else "")],
             ["latest session", "-" if cur is None else f"#{cur.session_no} started {utc(cur.started_ms)}, "
              + (f"ended {utc(cur.ended_ms)} ({cur.end_reason or 'no reason'})" if cur.ended_ms is not None
                 else "running (or stopped without ending)")],
             ["sessions that died", f"{s.unclean_sessions:,}"],
             ["outages", f"{len(s.outages):,}, {duration(s.outage_total_ms)} in all"],
             ["outage now", "none" if s.current_outage is None else
              f"since {utc(s.current_outage.started_ms)}: {s.current_outage.reason}"],
             ["equity / cash", f"{money(s.equity)} / {money(s.cash)}"]]
    sessions = [[str(x.session_no), utc(x.started_ms), utc(x.ended_ms), x.end_reason or
                 ("running or died" if x.ended_ms is None else ""),
                 duration((x.ended_ms or s.now_ms) - x.started_ms)] for x in s.sessions[::-1]]
    outages = [[utc(o.started_ms), utc(o.ended_ms) if o.ended_ms else "going on",
                duration((o.ended_ms or s.now_ms) - o.started_ms), utc(o.last_bar_ms), o.reason,
                "yes" if o.flattened else ""] for o in s.outages[::-1]]
    rej = [[str(n), src, why, (f"{c:,}", c), utc(t), ex] for n, src, why, c, t, ex in rejections[::-1]]
    positions = [[p.symbol, num(p.qty), num(p.avg_price), num(p.mark), money(p.margin),
                  "-" if p.liq_price is None else num(p.liq_price)] for p in s.positions]
    orders = [[o.order_id, o.symbol, utc(o.bar_ms), o.side, num(o.qty)] for o in s.orders]
    return "".join([
        table(("", "now"), facts, caption=f"Run {run_id} as of {utc(s.now_ms)}", table_id="health"),
        table(("symbol", "qty", "avg price", "mark", "margin", "liq price"), positions, caption="Open positions",
              table_id="positions"),
        table(("order", "symbol", "decided at", "side", "qty"), orders, caption="Open orders", table_id="open-orders"),
        table(("#", "started", "ended", "end reason", "length"), sessions, caption="Sessions", table_id="sessions"),
        table(("started", "ended", "length", "last bar before", "reason", "flattened"), outages,
              caption="Feed outages and skipped bars", table_id="outages"),
        table(("session", "source", "reason", "count", "last", "example"), rej, sortable=True, table_id="rejections",
              caption="Rejections by reason (market data refused, orders the exchange refused)"),
        _latency(run_id, timings),
    ])


def _latency(run_id: str, timings: list[BarTiming]) -> str:
    """Feed latency: percentiles and a chart (streamed bars of the daemon's sessions)."""
    if not timings:
        return ("<p class=sub>Feed latency: no bar timings in this trade log (a backtest's bars come from memory, "
                "and logs written before bar_timings existed have none).</p>")
    lat = summarize(timings)

    def row(name: str, sp: Spread | None) -> list[str]:
        return [name, *(("-",) * 4 if sp is None else (latency(v) for v in (sp.p50, sp.p95, sp.p99, sp.max)))]
    rows = [row("close → last candle (feed)", lat.feed), row("last candle → committed (processing)", lat.processing),
            row("close → committed (total)", lat.total), row("first candle → last candle (wait)", lat.wait)]
    caption = (f"Feed latency over {lat.bars:,} streamed bar(s)"
               + (f"; {lat.late:,} decided late from REST not counted" if lat.late else "")
               + ("" if lat.last_total_ms is None else f"; last bar {latency(lat.last_total_ms)}"))
    note = ("" if not lat.off_clock else
            f"<p class=sub>{lat.off_clock:,} bar(s) arrived more than a bar period from their close on this "
            "machine's clock (a replay exchange's simulated clock, or a system clock far off): they count for "
            "processing and wait, not for feed and total.</p>")
    return (table(("from → to", "p50", "p95", "p99", "max"), rows, caption=caption, table_id="latency") + note
            + chart(_api(run_id, "figures/latency"), "latency per bar"))
