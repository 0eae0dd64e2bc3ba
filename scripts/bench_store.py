"""The trade log's write ceiling: how many bar-events per second SQLite alone can take, with no engine.

    python scripts/bench_store.py [--symbols 100] [--bars 8760] [--held 0.5] [--repeats 3]

A backtest bar-event writes at least a candle, a forecast and a decision row, plus a positions row
while the symbol holds a position (``--held``: the share of symbols holding one); each bar adds an
equity, a risk-state and three VaR rows.  This script builds exactly those rows for ``--symbols`` ×
``--bars`` (realistic decimal strings and reasons, no engine, no model) and writes them, 500 bars per
transaction (``bot backtest`` commits about 2,000 bar-events at a time: the same at 4 symbols, fewer bars
above), four ways, each in a fresh file:

* ``TradeStore``: the real store (``TradeStore.write_bars``: aiosqlite, WAL, ``synchronous = FULL``,
  foreign keys on) — what a backtest pays for its log;
* ``raw sqlite3``: the same statements and rows through ``sqlite3.executemany`` on the calling thread
  with the same pragmas — the floor under any Python writer of this schema;
* ``inserts only``: the same, with the rows built before the clock starts (``bar_rows``, which a backtest's
  engine process does while its writer process inserts) — the writer process's ceiling;
* ``inserts only, no durability``: the same with ``journal_mode = OFF, synchronous = OFF``, foreign keys off —
  what SQLite takes when a crash may lose the whole file (not what the bot does: the ceiling of any log
  kept in SQLite on this machine).

bar-events/s = symbols × bars / seconds of writing (building the records is excluded).  None of the
numbers includes deciding anything, so a backtest writing this schema cannot go faster than them.
Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.events import Candle, EquityMarked, PositionMarked, VarMeasured  # noqa: E402
from bot.store.rows import INSERTS, BarRecord, bar_rows  # noqa: E402
from bot.store.schema import SCHEMA  # noqa: E402
from bot.store.trade_store import TradeStore  # noqa: E402
from risk.events import Decision, RiskStateLogged  # noqa: E402
from strategies.events import Forecast  # noqa: E402

START_MS = 1_704_067_200_000
HOUR = 3_600_000
COMMIT_EVERY = 500


def records(n_symbols: int, bars: int, held: float, seed: int = 1) -> list[BarRecord]:
    rng = random.Random(seed)
    syms = [f"S{i:03d}/USDT" for i in range(n_symbols)]
    holders = syms[:round(held * n_symbols)]
    price = {s: 100.0 + 10 * i for i, s in enumerate(syms)}
    out = []
    for k in range(bars):
        t = START_MS + k * HOUR
        candles, forecasts, decisions, positions = [], [], [], []
        for s in syms:
            p = price[s] = price[s] * (1 + rng.gauss(0, 0.01))
            o, c = Decimal(f"{p:.4f}"), Decimal(f"{p * (1 + rng.gauss(0, 0.005)):.4f}")
            candles.append(Candle(s, t, t + HOUR - 1, o, max(o, c) + Decimal("0.1"), min(o, c) - Decimal("0.1"),
                                  c, Decimal(f"{rng.uniform(1e3, 1e5):.3f}")))
            forecasts.append(Forecast(s, t, rng.gauss(0, 0.1), rng.uniform(0.3, 1.5), "baseline"))
            qty = Decimal(f"{rng.uniform(0.1, 5):.3f}") if s in holders else Decimal(0)
            decisions.append(Decision(s, t, "none", qty, qty, "sigma 0.8123 above the gate 0.6: not traded"))
            if s in holders:
                positions.append(PositionMarked(s, qty, o, c, Decimal("123.45"), Decimal("61.7")))
        equity = EquityMarked(t, Decimal("7345.12"), Decimal("10012.34"), tuple(positions))
        out.append(BarRecord(t, tuple(candles), tuple(forecasts), tuple(decisions), (), (), (), equity,
                             risk_state=RiskStateLogged("ACTIVE", None, "", Decimal("10500"), 0.7, 0.95, k),
                             var=tuple(VarMeasured(m, 1, 0.99, 321.0, 400.0)
                                       for m in ("model", "historical", "cornish_fisher"))))
    return out


async def with_store(path: Path, recs: list[BarRecord]) -> float:
    async with await TradeStore.open(path) as store:
        await store.begin_run("bench", "paper", "{}", "hash", "bench", 0)
        started = time.perf_counter()
        for a in range(0, len(recs), COMMIT_EVERY):
            await store.write_bars("bench", recs[a:a + COMMIT_EVERY])
        return time.perf_counter() - started


DURABLE = ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON")     # TradeStore's pragmas
NOT_DURABLE = ("journal_mode = OFF", "synchronous = OFF", "foreign_keys = OFF")


def raw(path: Path, recs: list[BarRecord], prebuilt: bool = False, pragmas: tuple[str, ...] = DURABLE) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in pragmas:
        db.execute(f"PRAGMA {pragma}")
    db.executescript(SCHEMA)
    db.execute("INSERT INTO runs VALUES ('bench', 0, 'paper', '{}', 'hash', 'bench')")
    built = [[bar_rows("bench", r) for r in recs[a:a + COMMIT_EVERY]] for a in range(0, len(recs), COMMIT_EVERY)] \
        if prebuilt else []
    started = time.perf_counter()
    for n, a in enumerate(range(0, len(recs), COMMIT_EVERY)):
        chunk = built[n] if prebuilt else [bar_rows("bench", r) for r in recs[a:a + COMMIT_EVERY]]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO equity (run_id, bar_ms, cash, equity) VALUES (?, ?, ?, ?)",
                       [("bench", b.bar_ms, b.cash, b.equity) for b in chunk])
        for k, sql in enumerate(INSERTS):
            rows = [row for b in chunk for row in b.inserts[k]]
            if rows:
                db.executemany(sql, rows)
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--held", type=float, default=0.5, help="share of symbols holding a position")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    recs = records(args.symbols, args.bars, args.held)
    events = args.symbols * args.bars
    rows = sum(len(r.candles) + len(r.forecasts) + len(r.decisions) + len(r.equity.positions) + 5 for r in recs)
    print(f"trade-log write ceiling: {args.symbols} symbols × {args.bars} bars = {events:,} bar-events, "
          f"{rows:,} rows, {COMMIT_EVERY} bars per transaction, median of {args.repeats}")
    for name, write in (("TradeStore", lambda p: asyncio.run(with_store(p, recs))),
                        ("raw sqlite3", lambda p: raw(p, recs)),
                        ("inserts only", lambda p: raw(p, recs, prebuilt=True)),
                        ("inserts only, no durability", lambda p: raw(p, recs, prebuilt=True, pragmas=NOT_DURABLE))):
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(write(Path(tmp) / "log.sqlite"))
        s = statistics.median(runs)
        print(f"{name:<28} {s:7.2f} s  {events / s:>10,.0f} bar-events/s  {rows / s:>10,.0f} rows/s", flush=True)


if __name__ == "__main__":
    main()
