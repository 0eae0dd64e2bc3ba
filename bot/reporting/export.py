"""Write the review out: the equity/drawdown PNG and CSV exports (the HTML file: :mod:`bot.web.report`).

``--csv PATH`` writes one row per fill to PATH (the stored exact decimal strings) and one row per
round trip beside it, at ``PATH`` with ``-round-trips`` before the suffix.
"""

from __future__ import annotations

import csv
from decimal import localcontext
from pathlib import Path

from bot.reporting.review import Review
from bot.timefmt import utc_minute

FILL_COLUMNS = ("run_id", "order_id", "trade_id", "symbol", "decision_bar_ms", "bar_ms", "time_utc", "side", "qty",
                "price", "fee", "notional", "reason")
TRIP_COLUMNS = ("symbol", "direction", "open_ms", "open_utc", "close_ms", "close_utc", "qty", "entry_price",
                "exit_price", "fees", "funding", "pnl", "fills", "liquidated")

def _utc(ms: int | None) -> str:
    return "" if ms is None else utc_minute(ms, label=False)


def write_png(review: Review, path: str | Path) -> Path:
    """The equity and drawdown figure as a PNG file."""
    from bot.reporting.figures import equity_drawdown, png_bytes

    out = Path(path)
    out.write_bytes(png_bytes(equity_drawdown(review)))
    return out


def trips_path(path: str | Path) -> Path:
    """Where the round trips go beside the fills CSV."""
    p = Path(path)
    return p.with_name(f"{p.stem}-round-trips{p.suffix or '.csv'}")


def write_csv(review: Review, path: str | Path) -> tuple[Path, Path]:
    """Fills to ``path``, round trips to :func:`trips_path`; returns both paths."""
    fills_out, trips_out = Path(path), trips_path(path)
    rid = review.log.report.run_id
    with fills_out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(FILL_COLUMNS)
        for f in review.log.fills:
            with localcontext(prec=60):
                notional = f.qty * f.price
            w.writerow((rid, f.order_id, f.trade_id, f.symbol, f.decision_bar_ms, f.bar_ms, _utc(f.bar_ms), f.side,
                        str(f.qty), str(f.price), str(f.fee), str(notional), f.reason))
    with trips_out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(TRIP_COLUMNS)
        for t in review.trips:
            w.writerow((t.symbol, "long" if t.direction > 0 else "short", t.open_ms, _utc(t.open_ms),
                        "" if t.close_ms is None else t.close_ms, _utc(t.close_ms), str(t.qty), str(t.entry_price),
                        "" if t.exit_price is None else str(t.exit_price), str(t.fees), str(t.funding), str(t.pnl),
                        t.fills, int(t.liquidated)))
    return fills_out, trips_out
