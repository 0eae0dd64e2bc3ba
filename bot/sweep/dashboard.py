"""The dashboard over a ``bot sweep`` results file (``bot serve --db DIR/sweep.sqlite``): one page with the
configurations ranked on their validation folds, the choice, its deflated Sharpe ratio, the grid's probability
of backtest overfitting and the held-out fold, and the same as JSON at ``/api/sweep``.

Read-only like the trade-log dashboard; each request reads the file afresh, so a page reloaded while the
sweep runs shows the runs finished so far.
"""
# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.
import json
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from bot.sweep.report import COLUMNS, Analysis, analyse, load_rows
from bot.web.app import add_static
from bot.web.html import chart, pct, shell, table, utc


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def analysis_json(a: Analysis) -> dict[str, Any]:
    """The analysis as JSON: every configuration (best validation Sharpe first), the choice, DSR, PBO and
    the chosen configuration's held-out runs."""
    d, o = a.deflated, a.overfitting
    return {
        "runs": a.runs, "validation_days": a.days,
        "failed": [{"run_id": r, "error": e} for r, e in a.failed],
        "configs": [{"config_id": c.config_id, "params": dict(c.params), "sharpe": _f(c.sharpe),
                     "fold_sharpe": {k: _f(v) for k, v in c.fold_sharpe.items()}, "net_return": _f(c.net_return),
                     "fills": _f(c.fills)} for c in a.configs],
        "chosen": None if a.chosen is None else a.chosen.config_id,
        "deflated_sharpe": None if d is None else {
            "dsr": _f(d.dsr), "sharpe": _f(d.sharpe), "sr0": _f(d.sr0), "trials": d.trials,
            "variance": _f(d.variance), "skew": _f(d.skew), "kurtosis": _f(d.kurtosis), "periods": d.periods},
        "pbo": None if o is None else {"pbo": _f(o.pbo), "splits": o.splits, "blocks": o.blocks},
        "held_out": [{k: r[k] for k in COLUMNS if k in r} | {"from": r["start_ms"], "to": r["end_ms"]}
                     for r in a.held_out],
        "held_out_configs": a.held_out_configs,
    }


def _page(path: Path, a: Analysis) -> str:
    label = {c.config_id: ", ".join(f"{k} = {v}" for k, v in c.params) for c in a.configs}
    facts = [["runs in the file", f"{a.runs:,}"], ["configurations with validation results", f"{len(a.configs):,}"],
             ["failed runs", f"{len(a.failed):,}" + (f" (first: {a.failed[0][0]}: {a.failed[0][1]})" if a.failed
                                                     else "")],
             ["validation days", f"{a.days:,}"],
             ["chosen on validation folds only", "none yet" if a.chosen is None else
              f"{a.chosen.config_id} ({label[a.chosen.config_id]}), Sharpe {a.chosen.sharpe:+.2f}"]]
    d, o = a.deflated, a.overfitting
    if a.chosen is not None:
        facts.append(["deflated Sharpe ratio", "n/a: the chosen configuration never traded" if d is None else
                      f"{d.dsr:.3f} = P(true Sharpe > 0) after {d.trials} trials (daily SR {d.sharpe:.4f} against "
                      f"{d.sr0:.4f}, the best expected of {d.trials} by luck)"])
        facts.append(["probability of backtest overfitting", "n/a: every configuration made the same returns"
                      if o is None else f"{o.pbo:.2f} over {o.splits:,} CSCV splits of {o.blocks} blocks "
                      "(0.5: the in-sample best does no better than a coin out of sample)"])
    folds = sorted({f for c in a.configs for f in c.fold_sharpe})
    configs = [[(c.config_id, c.config_id), label[c.config_id], (f"{c.sharpe:+.2f}", c.sharpe),
                *((f"{c.fold_sharpe.get(f, float('nan')):+.2f}", c.fold_sharpe.get(f, 0.0)) for f in folds),
                (pct(c.net_return, "+.2%"), c.net_return), (f"{c.fills:,.0f}", c.fills)] for c in a.configs]
    held = [[r["fold"], r["symbols"], utc(r["start_ms"]), utc(r["end_ms"]),
             f"{r['sharpe']:+.2f}" if r["ok"] else "failed", pct(r["net_return"], "+.2%") if r["ok"] else r["error"],
             pct(r["max_drawdown"], ".2%") if r["ok"] else "-", f"{r['fills']:,}" if r["ok"] else "-"]
            for r in a.held_out]
    warn = ("" if a.held_out_configs <= 1 else
            f"<p class=sub>Warning: {a.held_out_configs} configurations have been run on the held-out folds of this "
            "file: its held-out figures are no longer an untouched test.</p>")
    body = "".join([
        table(("", ""), facts, caption="The choice, and how much of it is luck", table_id="sweep-summary"),
        table(("fold", "symbols", "from", "to", "Sharpe", "net", "max drawdown", "fills"), held, table_id="held-out",
              caption="The chosen configuration on the held-out fold (run once)"), warn,
        chart("/api/sweep/figures/sharpe", "validation Sharpe of each configuration"),
        table(("config", "settings", "validation Sharpe", *folds, "net (mean)", "fills (mean)"), configs,
              sortable=True, table_id="configs", caption="Every configuration on its validation folds (annualised "
              "Sharpe of the daily returns, averaged over symbol sets; best first)"),
    ])
    return shell("Parameter sweep", body, subtitle=f"results file {path}")


def sharpe_figure(a: Analysis) -> dict[str, Any]:
    """Each configuration's annualised validation Sharpe, best first; the chosen one in orange."""
    chosen = None if a.chosen is None else a.chosen.config_id
    return {"data": [{"type": "bar", "x": [c.config_id for c in a.configs], "y": [_f(c.sharpe) for c in a.configs],
                      "marker": {"color": ["#e6550d" if c.config_id == chosen else "#3182bd" for c in a.configs]},
                      "hovertext": [", ".join(f"{k} = {v}" for k, v in c.params) for c in a.configs]}],
            "layout": {"title": {"text": "Validation Sharpe per configuration (the chosen one in orange)", "x": 0},
                       "height": 340, "margin": {"l": 60, "r": 20, "t": 50, "b": 90},
                       "xaxis": {"type": "category"}, "yaxis": {"title": {"text": "Sharpe (annualised)"}}}}


def create_sweep_app(path: str | Path) -> FastAPI:
    """The application over the sweep results file at ``path``."""
    path = Path(path)
    app = FastAPI(title="sigma-bot sweep API", version="1",
                  description="A bot sweep results file: every run, the choice on validation folds, the deflated "
                              "Sharpe ratio, the probability of backtest overfitting and the held-out fold.")
    add_static(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return _page(path, analyse(load_rows(path)))

    @app.get("/api/sweep", tags=["sweep"])
    def api_sweep() -> dict[str, Any]:
        """The analysis (as ``bot report`` prints it) and every run's row (the CSV's columns)."""
        rows = load_rows(path)
        return {"analysis": analysis_json(analyse(rows)),
                "runs": [{k: r[k] for k in r if k not in ("days_json", "daily_json")}
                         | {"params": json.loads(r["params_json"])} for r in rows]}

    @app.get("/api/sweep/figures/{name}", tags=["sweep"])
    def api_figure(name: str) -> dict[str, Any]:
        """``sharpe``: each configuration's validation Sharpe as a Plotly figure."""
        if name != "sharpe":
            raise HTTPException(404, f"no figure {name!r}; figures: sharpe")
        return sharpe_figure(analyse(load_rows(path)))

    return app


__all__ = ["create_sweep_app", "analysis_json", "sharpe_figure"]
