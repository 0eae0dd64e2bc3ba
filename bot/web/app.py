"""The dashboard and JSON API over one trade log: :func:`create_app` builds the FastAPI application.

Pages (HTML) at ``/`` and ``/runs/{run}/{page}``; the same data as JSON under ``/api`` (OpenAPI at ``/docs``);
server-sent events at ``/api/runs/{run}/events`` announce each new bar (the server polls the log's last bar,
one indexed ``MAX`` a second).  Every read opens the log with ``mode=ro``.  Operator commands
(``POST /api/runs/{run}/commands``) need ``Authorization: Bearer <token>``; without a configured token they are
refused (403), without or with a wrong token 401.  The token is never echoed, logged or put in a page.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations, local aliases included.
import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import plotly
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from bot.analytics.gate import refusal_kind
from bot.analytics.latency import summarize
from bot.errors import DataError
from bot.reporting.tearsheet import build_tearsheet
from bot.web import charts, pages
from bot.web.commands import COMMANDS, NOTE_MAX, NoCommandsTable, submit_command
from bot.web.data import TradeLogReader, finite
from bot.web.html import PAGES, esc, run_url, shell, utc

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class RunOut(BaseModel):
    run_id: str
    mode: str = Field(description="'paper' or 'live'")
    created_ms: int
    sessions: int
    running: bool = Field(description="the latest session has no end: running, or it died")
    bars: int
    first_bar_ms: int | None
    last_bar_ms: int | None
    equity_start: Decimal | None = Field(description="exact decimal string, as in the trade log")
    equity_end: Decimal | None


class EquityPoint(BaseModel):
    bar_ms: int = Field(description="the bar's open time, UTC milliseconds")
    equity: Decimal = Field(description="equity marked at the bar's close (exact decimal string)")
    cash: Decimal


class CommandIn(BaseModel):
    command: Literal["stop-entries", "flatten", "resume"]
    note: str = Field(default="", max_length=NOTE_MAX)


class CommandOut(BaseModel):
    command_id: int
    command: str
    run_id: str
    status: str = "queued: the engine takes it at its next bar"


def add_static(app: FastAPI) -> None:
    """The pages' script, style sheet and plotly.js (as the plotly Python package ships it: no network)."""

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        files = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
        if name not in files:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / name, media_type=files[name])


def create_app(db_path: str | Path, token: str | None = None, poll_s: float = 1.0) -> FastAPI:
    """The application over the trade log at ``db_path``; ``token`` enables the operator controls."""
    reader = TradeLogReader(db_path)
    app = FastAPI(title="sigma-bot dashboard API", version="1",
                  description="Read-only views of a sigma-bot trade log, and token-protected operator commands. "
                              "Money is an exact decimal string; times are UTC milliseconds (bar open times).")
    bearer = HTTPBearer(auto_error=False, description="BOT_API_TOKEN of the server")

    def run_or_404(run_id: str) -> str:
        known = [r.run_id for r in reader.runs()]
        if run_id not in known:
            raise HTTPException(404, f"no run {run_id!r} (runs here: {', '.join(known) or 'none'})")
        return run_id

    Run = Annotated[str, Depends(run_or_404)]

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(exc)}, status_code=503)

    add_static(app)

    # -- pages --------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def runs_page() -> str:
        return shell("Runs", pages.runs_page(reader.runs()), live_url="/api/events",
                     subtitle=f"trade log {reader.path.name}")

    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_home(run_id: Run) -> RedirectResponse:
        return RedirectResponse(run_url(run_id, "overview"))

    @app.get("/runs/{run_id}/{page}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run_id: Run, page: str, symbol: str | None = None, kind: str | None = None) -> str:
        names = dict(PAGES)
        if page not in names:
            raise HTTPException(404, f"no page {page!r}; pages: {', '.join(names)}")
        status = reader.status(run_id)
        if page == "overview":
            body = pages.overview_page(run_id, reader.review(run_id), status)
        elif page == "tearsheet":
            review = reader.review(run_id)
            body = pages.tearsheet_page(run_id, review, build_tearsheet(review),
                                        run_url(run_id, "trades") + "#round-trips")
        elif page == "symbols":
            syms = reader.symbols(run_id)
            body = pages.symbols_page(run_id, syms, symbol if symbol in syms else (syms[0] if syms else None))
        elif page == "trades":
            body = pages.trades_page(run_id, reader.review(run_id), reader.orders(run_id), kind or None)
        elif page == "risk":
            body = pages.risk_page(run_id, reader, status, reader.commands(run_id), token is not None,
                                   reader.has_commands_table())
        elif page == "forecasts":
            body = pages.forecasts_page(run_id, reader.review(run_id), status, reader.models(run_id))
        else:
            body = pages.health_page(run_id, status, reader.rejections(run_id), reader.timings(run_id))
        last = utc(status.last_bar_ms)
        return shell(f"{names[page]} · run {run_id}", body, run_id=run_id, page=page,
                     live_url=_events_url(run_id), subtitle=f"{status.mode} run, last bar {last}")

    # -- JSON API ------------------------------------------------------------------------------------

    @app.get("/api/runs", response_model=list[RunOut], tags=["runs"])
    def api_runs() -> list[RunOut]:
        """Every run in the trade log, most recently active first."""
        return [RunOut(**{f: getattr(r, f) for f in RunOut.model_fields}) for r in reader.runs()]

    @app.get("/api/runs/{run_id}/equity", response_model=list[EquityPoint], tags=["runs"])
    def api_equity(run_id: Run) -> list[EquityPoint]:
        """Equity and cash per bar."""
        log = reader.review(run_id).log
        return [EquityPoint(bar_ms=b, equity=e, cash=c) for b, c, e in log.equity]

    @app.get("/api/runs/{run_id}/summary", tags=["runs"])
    def api_summary(run_id: Run) -> dict[str, Any]:
        """The key figures of ``bot report``: performance beside buy and hold, the account, per-symbol PnL,
        round-trip statistics and the reconciliation checks."""
        r = reader.review(run_id)
        rep = r.log.report
        return {
            "run_id": run_id, "mode": rep.mode, "bars": rep.bars, "start_ms": rep.start_ms, "end_ms": rep.end_ms,
            "equity_start": _dec(rep.equity_start), "equity_end": _dec(rep.equity_end), "cash_end": _dec(rep.cash_end),
            "fills": rep.trades, "fees": _dec(rep.fees), "funding": _dec(rep.funding), "liquidations": rep.liquidations,
            "time_in_market": r.time_in_market, "turnover": r.turnover, "bars_a_year": r.periods,
            "performance": _perf(r.perf), "buy_and_hold": _perf(r.bench), "buy_and_hold_symbols": list(r.bench_symbols),
            "symbols": [{"symbol": s.symbol, "pnl": _dec(s.pnl), "fees": _dec(s.fees), "funding": _dec(s.funding),
                         "liquidations": s.liquidations, "turnover": s.turnover, **_stats(s.stats)} for s in r.symbols],
            "round_trips": {"long": _stats(r.long), "short": _stats(r.short), "all": _stats(r.stats)},
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in rep.checks],
        }

    @app.get("/api/runs/{run_id}/status", tags=["runs"])
    def api_status(run_id: Run) -> dict[str, Any]:
        """Where the run stands now, as ``bot status`` reads it."""
        s = reader.status(run_id)
        return {"run_id": run_id, "mode": s.mode, "now_ms": s.now_ms, "last_bar_ms": s.last_bar_ms,
                "bar_age_ms": s.bar_age_ms, "stale": s.stale, "equity": _dec(s.equity), "cash": _dec(s.cash),
                "trading": None if s.trading is None else {"state": s.trading.state, "reason": s.trading.reason,
                                                           "since_bar_ms": s.trading.since_bar_ms},
                "positions": [{"symbol": p.symbol, "qty": str(p.qty), "avg_price": str(p.avg_price),
                               "mark": str(p.mark), "margin": str(p.margin),
                               "liq_price": None if p.liq_price is None else str(p.liq_price)} for p in s.positions],
                "open_orders": [{"order_id": o.order_id, "symbol": o.symbol, "bar_ms": o.bar_ms, "side": o.side,
                                 "qty": str(o.qty)} for o in s.orders],
                "skill": [{"model": k.model, "symbol": k.symbol, "bar_ms": k.bar_ms, "skill": finite(k.skill),
                           "mu_raw": finite(k.mu_raw), "mu": finite(k.mu), "alarm": k.alarm} for k in s.skill]}

    @app.get("/api/runs/{run_id}/round-trips", tags=["trades"])
    def api_trips(run_id: Run) -> list[dict[str, Any]]:
        """Round trips, flat to flat (``close_ms`` null: still open, marked at the last bar)."""
        return [{"symbol": t.symbol, "direction": "long" if t.direction > 0 else "short", "open_ms": t.open_ms,
                 "close_ms": t.close_ms, "qty": str(t.qty), "entry_price": str(t.entry_price),
                 "exit_price": None if t.exit_price is None else str(t.exit_price), "fees": str(t.fees),
                 "funding": str(t.funding), "pnl": str(t.pnl), "fills": t.fills, "liquidated": t.liquidated}
                for t in reader.review(run_id).trips]

    @app.get("/api/runs/{run_id}/decisions", tags=["trades"])
    def api_decisions(run_id: Run, kind: str | None = Query(None, description="refusal kind or action"),
                      limit: int = Query(1000, ge=1, le=100_000), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        """Decisions with their reasons, oldest first; ``kind`` filters (``weak``, ``gated``, ``buy`` ...)."""
        rows = [d for d in reader.review(run_id).log.decisions
                if kind is None or (refusal_kind(d.reason) if d.action == "none" else d.action) == kind]
        return {"total": len(rows), "decisions": [
            {"bar_ms": d.bar_ms, "symbol": d.symbol, "action": d.action, "target_qty": str(d.target_qty),
             "reason": d.reason, "kind": refusal_kind(d.reason) if d.action == "none" else d.action}
            for d in rows[offset:offset + limit]]}

    @app.get("/api/runs/{run_id}/orders", tags=["trades"])
    def api_orders(run_id: Run) -> list[dict[str, Any]]:
        return [{"order_id": o.order_id, "bar_ms": o.bar_ms, "symbol": o.symbol, "side": o.side, "type": o.type,
                 "qty": str(o.qty), "leverage": str(o.leverage), "status": o.status,
                 "status_reason": o.status_reason} for o in reader.orders(run_id)]

    @app.get("/api/runs/{run_id}/fills", tags=["trades"])
    def api_fills(run_id: Run) -> list[dict[str, Any]]:
        return [{"order_id": f.order_id, "trade_id": f.trade_id, "symbol": f.symbol,
                 "decision_bar_ms": f.decision_bar_ms, "bar_ms": f.bar_ms, "side": f.side, "qty": str(f.qty),
                 "price": str(f.price), "fee": str(f.fee), "reason": f.reason} for f in reader.review(run_id).log.fills]

    @app.get("/api/runs/{run_id}/candles", tags=["market"])
    def api_candles(run_id: Run, symbol: str) -> dict[str, Any]:
        """A symbol's candles and forecasts (μ, σ, the calibrated z68/z95) with the decision of each bar."""
        candles, band = reader.candles(run_id, symbol)
        return {"symbol": symbol,
                "candles": [{"bar_ms": c.bar_ms, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
                             "volume": c.volume} for c in candles],
                "forecasts": [{"bar_ms": b.bar_ms, "mu": finite(b.mu), "sigma": finite(b.sigma), "z68": b.z68,
                               "z95": b.z95, "action": b.action, "reason": b.reason} for b in band]}

    @app.get("/api/runs/{run_id}/risk", tags=["risk"])
    def api_risk(run_id: Run) -> dict[str, Any]:
        """Trading-state changes, VaR estimates and deleveraging steps."""
        return {"states": [{"bar_ms": b, "state": s, "reason": why} for b, s, why in reader.states(run_id)],
                "var": [{"bar_ms": b, "method": m, "horizon": h, "alpha": a, "var": finite(v), "es": finite(e)}
                        for b, m, h, a, v, e in reader.var(run_id)],
                "deleverage_steps": [{"bar_ms": b, "step": k, "symbol": s, "exposure_before": eb,
                                      "exposure_after": ea, "var_before": vb, "var_after": va}
                                     for b, k, s, eb, ea, vb, va in reader.deleverage(run_id)]}

    @app.get("/api/runs/{run_id}/forecast-quality", tags=["forecasts"])
    def api_quality(run_id: Run) -> dict[str, Any]:
        """NLL against the EWMA baseline, coverage, reliability, PIT, the rolling scores, skill and the gate."""
        from bot.reporting.review import skill_summary

        r = reader.review(run_id)
        q = r.quality
        return {
            "model": r.model,
            "quality": None if q is None else {
                "n": q.n, "nll": finite(q.nll), "baseline_nll": finite(q.baseline_nll),
                "model_nll_same": finite(q.model_nll_same), "coverage_68": q.cov68, "coverage_95": q.cov95,
                "reliability": [list(p) for p in q.reliability], "pit_histogram": list(q.pit_histogram)},
            "rolling": {"bar_ms": [int(b) for b in r.rolling.bar_ms], "nll": [finite(x) for x in r.rolling.nll],
                        "baseline_nll": [finite(x) for x in r.rolling.baseline_nll],
                        "coverage_68": [finite(x) for x in r.rolling.cov68],
                        "coverage_95": [finite(x) for x in r.rolling.cov95]},
            "skill": [{"model": m, "symbol": s, "forecasts": n, "with_skill": share, "last_scale": finite(last),
                       "alarms": alarms} for m, s, n, share, last, alarms in skill_summary(r.log)],
            "gate": [{"kind": g.kind, "signals": g.signals, "hit_rate": g.hit_rate, "mean_bps": g.mean_bps,
                      "would_earn": g.would_earn, "net_of_costs": g.net_of_costs} for g in r.gate],
        }

    @app.get("/api/runs/{run_id}/health", tags=["health"])
    def api_health(run_id: Run) -> dict[str, Any]:
        """Sessions, outages, rejections by reason (every session) and the last bar's age."""
        s = reader.status(run_id)
        return {"last_bar_ms": s.last_bar_ms, "bar_age_ms": s.bar_age_ms, "stale": s.stale,
                "sessions": [{"session_no": x.session_no, "started_ms": x.started_ms, "ended_ms": x.ended_ms,
                              "end_reason": x.end_reason} for x in s.sessions],
                "outages": [{"started_ms": o.started_ms, "ended_ms": o.ended_ms, "last_bar_ms": o.last_bar_ms,
                             "reason": o.reason, "flattened": o.flattened} for o in s.outages],
                "rejections": [{"session_no": n, "source": src, "reason": why, "count": c, "last_ms": t,
                                "example": ex} for n, src, why, c, t, ex in reader.rejections(run_id)]}

    @app.get("/api/runs/{run_id}/latency", tags=["health"])
    def api_latency(run_id: Run) -> dict[str, Any]:
        """Each live bar's close, candle arrivals and commit (wall clock, ms) and the percentiles of the feed,
        processing, total and wait latency over the streamed bars (bars decided late from REST are not counted;
        feed and total only over bars whose close is on this machine's clock: not a replay's simulated one)."""
        timings = reader.timings(run_id)
        lat = summarize(timings)
        spreads = {name: None if sp is None else {"p50_ms": sp.p50, "p95_ms": sp.p95, "p99_ms": sp.p99,
                                                  "max_ms": sp.max}
                   for name, sp in (("feed", lat.feed), ("processing", lat.processing), ("total", lat.total),
                                    ("wait", lat.wait))}
        return {"bars": lat.bars, "late": lat.late, "off_clock": lat.off_clock, **spreads,
                "timings": [{"bar_ms": t.bar_ms, "close_ms": t.close_ms, "first_received_ms": t.first_received_ms,
                             "last_received_ms": t.last_received_ms, "committed_ms": t.committed_ms,
                             "candles": t.candles, "late": t.late} for t in timings]}
    @app.get("/api/runs/{run_id}/models", tags=["forecasts"])
    def api_models(run_id: Run) -> list[dict[str, Any]]:
        """The model versions: the configured one, each retrain (accepted or rejected, with its held-out scores
        and reason) or walk-forward refit, and the bars each served; ``swaps`` follow from ``first_bar_ms``."""
        from bot.reporting.models import model_rows

        return model_rows(reader.models(run_id))

    @app.get("/api/runs/{run_id}/commands", tags=["controls"])
    def api_commands(run_id: Run) -> list[dict[str, Any]]:
        """The operator's commands and the bar at which the engine took each (null: not yet)."""
        return [{"command_id": c.command_id, "created_ms": c.created_ms, "command": c.command, "note": c.note,
                 "taken_bar_ms": c.taken_bar_ms} for c in reader.commands(run_id)]

    @app.post("/api/runs/{run_id}/commands", response_model=CommandOut, status_code=202, tags=["controls"],
              responses={401: {"description": "no token, or a wrong one"},
                         403: {"description": "controls are off (the server has no BOT_API_TOKEN)"}})
    def api_command(run_id: Run, body: CommandIn,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> CommandOut:
        """Queue ``stop-entries``, ``flatten`` or ``resume``; the engine takes it at its next bar and logs it
        with that bar's decisions."""
        if token is None:
            raise HTTPException(403, "operator controls are off: the server was started without BOT_API_TOKEN")
        given = credentials.credentials if credentials is not None else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "a valid API token is needed (Authorization: Bearer ...)",
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            command_id = submit_command(reader.path, run_id, body.command, body.note)
        except NoCommandsTable as exc:
            raise HTTPException(409, str(exc)) from exc
        return CommandOut(command_id=command_id, command=body.command, run_id=run_id)

    @app.get("/api/runs/{run_id}/figures/{name}", tags=["figures"])
    def api_figure(run_id: Run, name: str, symbol: str | None = None) -> dict[str, Any]:
        """A chart of the dashboard as a Plotly figure (``data`` and ``layout``)."""
        try:
            return charts.figure(reader, run_id, name, symbol)
        except charts.UnknownFigure as exc:
            raise HTTPException(404, str(exc)) from exc
        except charts.MissingSymbol as exc:
            raise HTTPException(422, str(exc)) from exc

    # -- live updates -----------------------------------------------------------------------------------

    async def stream(request: Request, run_id: str | None) -> AsyncIterator[str]:
        last = await asyncio.to_thread(reader.last_bar_ms, run_id)
        yield f"retry: 2000\nevent: ready\ndata: {json.dumps({'bar_ms': last})}\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            await asyncio.sleep(poll_s)
            try:
                bar = await asyncio.to_thread(reader.last_bar_ms, run_id)
            except DataError:
                bar = last
            if bar is not None and bar != last:
                last, quiet = bar, 0.0
                yield f"event: bar\ndata: {json.dumps({'bar_ms': bar, 'bar_utc': utc(bar)})}\n\n"
            else:
                quiet += poll_s
                if quiet >= 15:   # a comment keeps proxies from closing an idle stream
                    quiet = 0.0
                    yield ": keep-alive\n\n"

    @app.get("/api/runs/{run_id}/events", tags=["live"])
    def api_events(run_id: Run, request: Request) -> StreamingResponse:
        """Server-sent events: ``ready`` on connect, then ``bar`` ({bar_ms, bar_utc}) on each new bar."""
        return StreamingResponse(stream(request, run_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/events", tags=["live"])
    def api_events_any(request: Request) -> StreamingResponse:
        """Server-sent events for a new bar of any run."""
        return StreamingResponse(stream(request, None), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.state.reader = reader
    app.state.controls = token is not None
    return app


def _events_url(run_id: str) -> str:
    from urllib.parse import quote

    return f"/api/runs/{quote(run_id, safe='')}/events"


def _dec(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _perf(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    dd = p.max_drawdown
    return {"total_return": finite(p.total_return), "cagr": finite(p.cagr), "volatility": finite(p.volatility),
            "sharpe": finite(p.sharpe), "sortino": finite(p.sortino), "calmar": finite(p.calmar),
            "max_drawdown": None if dd is None else {"depth": dd.depth, "peak_ms": dd.peak_ms,
                                                     "trough_ms": dd.trough_ms, "recovery_ms": dd.recovery_ms}}


def _stats(st: Any) -> dict[str, Any]:
    return {"trips": st.trips, "wins": st.wins, "win_rate": st.win_rate, "profit_factor": finite(st.profit_factor),
            "expectancy": _dec(st.expectancy), "pnl_closed": _dec(st.pnl)}


__all__ = ["create_app", "COMMANDS", "esc"]
