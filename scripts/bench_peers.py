"""sigma-bot's ``bot backtest`` against backtrader and NautilusTrader: the same bars, the same rule, bar-events/s.

    pip install -e ".[peers]"          # backtrader and nautilus_trader (optional; an absent peer is skipped)
    python scripts/bench_peers.py [--markets real generated] [--repeats 3] [--data ../shared/data] [--json out.json]

The rule, in every engine: per symbol and closed hourly bar, r = log returns of the closes,

    μ = 0.5 × mean(r over the last 24 bars)          σ = √(RiskMetrics EWMA of r², λ = 0.94)
    s = μ / σ:  long when s ≥ 0.10, short when s ≤ −0.15; a position is kept while s in its direction ≥ 0.03

with a 10 bps fee on each fill.  In sigma-bot that is the baseline predictor with its shipped defaults
(``[model.baseline] momentum_bars = 24, mu_shrink = 0.5, ewma_lambda = 0.94``: μ and σ exactly as above, σ's
EWMA run over the 128-bar window, seeded with its mean r²) behind the cost-blind ``[risk.gate] rule =
"strength"`` with its default thresholds (0.10, 0.15, 0.03), μ at face value (``[forecast.skill]``,
``calibration`` and ``monitor`` off), ``[paper] taker_fee_bps = 10, slippage_bps = 0``.  The peers compute μ and
σ incrementally (the EWMA over all bars so far) and size each entry at a fixed 1/(2 × symbols) of the starting
cash; sigma-bot sizes as it always does (Kelly, volatility target, VaR budget, caps), checks VaR and
deleveraging on every bar and writes every candle, forecast, decision, order, fill and equity mark to its
SQLite trade log; the peers keep their results in memory.  The figures measure engines doing the same
decisions per bar, not the same work per bar.

Markets: **real**, the 8 symbols of ``../shared/data`` over 2025 (skipped without it), and **generated**, 100
symbols × 2,000 bars (``bot.feeds.replay.synthetic``, seed 7), each after 128 bars of warm-up that every
engine reads but none decides on.  bar-events = symbol-bars decided (the warm-up bars not counted).
Each case runs in a fresh process (``--case``), cases interleaved, ``--repeats`` rounds; the time is the
engine's run with the bars already in memory (sigma-bot: ``run_backtest``, which includes its warm-up and
the baseline's one-pass forecasts; backtrader: ``cerebro.run()``; Nautilus: ``engine.run()``), medians printed
with each peer's ratio to sigma-bot.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REAL = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT", "ADA/USDT", "LTC/USDT", "DOGE/USDT"]
REAL_FROM, REAL_TO = 1_735_689_600_000, 1_767_225_600_000     # 2025-01-01 .. 2026-01-01 UTC
GEN_START = 1_704_067_200_000
WINDOW = 128
LONG, SHORT, EXIT = 0.10, 0.15, 0.03
FEE = 0.001
CASH = 10_000.0

CONFIG = f"""
[market]
window = {WINDOW}
[risk.gate]
rule = "strength"
long_entry_strength = {LONG}
short_entry_strength = {SHORT}
exit_strength = {EXIT}
[forecast.skill]
enabled = false
[forecast.calibration]
enabled = false
[forecast.monitor]
enabled = false
[paper]
taker_fee_bps = 10
slippage_bps = 0
"""


class RuleState:
    """The rule for one symbol, bar by bar: the target direction (−1, 0, +1) after each close."""

    def __init__(self) -> None:
        self.prev: float | None = None
        self.returns: deque[float] = deque(maxlen=24)
        self.var: float | None = None
        self.n = 0
        self.side = 0

    def update(self, close: float) -> int:
        if self.prev is not None and close > 0 and self.prev > 0:
            r = math.log(close / self.prev)
            self.returns.append(r)
            self.var = r * r if self.var is None else 0.94 * self.var + 0.06 * r * r
            self.n += 1
        self.prev = close
        if self.n < WINDOW or not self.var:
            return self.side
        s = 0.5 * (sum(self.returns) / len(self.returns)) / math.sqrt(self.var)
        if s >= LONG:
            self.side = 1
        elif s <= -SHORT:
            self.side = -1
        elif self.side == 1 and s < EXIT or self.side == -1 and -s < EXIT:
            self.side = 0
        return self.side


# ---- the markets, as CSV files every case reads (not timed) ----

def write_markets(folder: Path, data: Path, markets: list[str]) -> dict[str, dict[str, Path]]:
    from bot.feeds.replay.csvdata import load_ohlcv_csv, write_ohlcv_csv
    from bot.feeds.replay.synthetic import generate_market

    out: dict[str, dict[str, Path]] = {}
    if "real" in markets and (data / "BTCUSDT-1h.csv.gz").exists():
        out["real"] = {}
        for sym in REAL:
            s = load_ohlcv_csv(data / f"{sym.replace('/', '')}-1h.csv.gz")
            # 2025 plus the window before it (sigma-bot's warm-up; the peers read it as their first bars)
            lo = int(s.open_ms.searchsorted(REAL_FROM - WINDOW * 3_600_000))
            hi = int(s.open_ms.searchsorted(REAL_TO))
            p = folder / "real" / f"{sym.replace('/', '')}-1h.csv"
            p.parent.mkdir(parents=True, exist_ok=True)
            write_ohlcv_csv(p, s.slice(lo, hi))
            out["real"][sym] = p
    elif "real" in markets:
        print(f"no real data in {data}: the real market is skipped")
    if "generated" in markets:
        syms = [f"S{i:03d}/USDT" for i in range(100)]
        gen = generate_market(syms, WINDOW + 2000, GEN_START, seed=7)
        out["generated"] = {}
        for sym, series in gen.items():
            p = folder / "generated" / f"{sym.replace('/', '')}-1h.csv"
            p.parent.mkdir(parents=True, exist_ok=True)
            write_ohlcv_csv(p, series)
            out["generated"][sym] = p
    return out


def frames(files: dict[str, Path]) -> dict[str, object]:
    import pandas as pd

    out = {}
    for sym, p in files.items():
        df = pd.read_csv(p)
        df.index = pd.to_datetime(df.pop("open_time"), unit="ms", utc=True)
        out[sym] = df.astype(float)
    return out


# ---- the cases: each returns (seconds, bar-events, fills) ----

def case_sigma(files: dict[str, Path], tmp: Path) -> tuple[float, int, int]:
    import asyncio

    from bot.config import parse_settings
    from bot.feeds.replay.csvdata import load_ohlcv_csv
    from bot.runs.backtest import run_backtest

    data = {s: load_ohlcv_csv(p) for s, p in files.items()}
    settings = parse_settings(CONFIG).with_overrides(run={"db": str(tmp / "sigma.sqlite"), "id": "bench"},
                                                     market={"symbols": list(files)})
    t = time.perf_counter()
    r = asyncio.run(run_backtest(settings, data))
    return time.perf_counter() - t, r.bar_events, r.stats.fills


def case_backtrader(files: dict[str, Path], tmp: Path) -> tuple[float, int, int]:
    import backtrader as bt

    dfs = frames(files)
    n = len(dfs)

    class Rule(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.rules = {d: RuleState() for d in self.datas}
            self.seen = {d: -1 for d in self.datas}
            self.events = 0
            self.fills = 0

        def notify_order(self, order: bt.Order) -> None:
            if order.status == order.Completed:
                self.fills += 1

        def next(self) -> None:
            for d in self.datas:
                if len(d) == self.seen[d]:        # no new bar for this symbol (a gap): nothing to decide
                    continue
                self.seen[d] = len(d)
                self.events += 1
                close = d.close[0]
                side = self.rules[d].update(close)
                pos = self.getposition(d).size
                want = 0.0 if side == 0 else side * (CASH / (2 * n)) / close
                if side == 0 and pos != 0 or side != 0 and (pos == 0 or (pos > 0) != (side > 0)):
                    self.order_target_size(data=d, target=want)

    cerebro = bt.Cerebro(stdstats=False)
    for sym, df in dfs.items():
        cerebro.adddata(bt.feeds.PandasData(dataname=df.drop(columns=["volume"]).assign(volume=df["volume"])),
                        name=sym)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.addstrategy(Rule)
    t = time.perf_counter()
    strat = cerebro.run()[0]
    # bar-events decided: the first WINDOW bars of each symbol only warm up, as in sigma-bot
    return time.perf_counter() - t, strat.events - WINDOW * n, strat.fills


def case_nautilus(files: dict[str, Path], tmp: Path) -> tuple[float, int, int]:
    from decimal import Decimal

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, CurrencyType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Currency, Money, Price, Quantity
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.trading.strategy import Strategy

    dfs = frames(files)
    n = len(dfs)
    venue = Venue("BINANCE")
    engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                 logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN, base_currency=USDT,
                     starting_balances=[Money(1_000_000_000, USDT)], default_leverage=Decimal(1))
    bar_types = []
    events = 0
    for sym, df in dfs.items():
        base = sym.split("/")[0]
        code = base if len(base) >= 3 else base + "X"
        inst = CurrencyPair(
            instrument_id=InstrumentId(Symbol(f"{base}USDT"), venue), raw_symbol=Symbol(f"{base}USDT"),
            base_currency=Currency(code, 8, 0, code, CurrencyType.CRYPTO), quote_currency=USDT,
            price_precision=6, size_precision=6, price_increment=Price(1e-06, 6), size_increment=Quantity(1e-06, 6),
            lot_size=None, max_quantity=None, min_quantity=None, max_notional=None, min_notional=None,
            max_price=None, min_price=None, margin_init=Decimal(0), margin_maint=Decimal(0),
            maker_fee=Decimal(str(FEE)), taker_fee=Decimal(str(FEE)), ts_event=0, ts_init=0)
        engine.add_instrument(inst)
        bar_type = BarType.from_str(f"{inst.id}-1-HOUR-LAST-EXTERNAL")
        # ts_init at the bar's close (open + 1 h), as a closed kline arrives
        bars: list[Bar] = BarDataWrangler(bar_type, inst).process(df, ts_init_delta=3_600_000_000_000)
        engine.add_data(bars)
        bar_types.append((bar_type, inst))
        events += len(bars)

    class Rule(Strategy):  # type: ignore[misc]
        def on_start(self) -> None:
            self.rules = {bt.instrument_id: RuleState() for bt, _ in bar_types}
            self.side = {bt.instrument_id: 0 for bt, _ in bar_types}
            self.qty: dict[object, float] = {}
            self.insts = {bt.instrument_id: inst for bt, inst in bar_types}
            for bt, _ in bar_types:
                self.subscribe_bars(bt)

        def on_bar(self, bar: Bar) -> None:
            iid = bar.bar_type.instrument_id
            close = float(bar.close)
            side = self.rules[iid].update(close)
            held = self.side[iid]
            if side == held:
                return
            inst = self.insts[iid]
            qty = self.qty.get(iid, 0.0) if held else 0.0          # close what is held
            new = (CASH / (2 * n)) / close if side else 0.0
            total = qty + new
            if total <= 0:
                return
            order = self.order_factory.market(iid, OrderSide.BUY if side > held else OrderSide.SELL,
                                              inst.make_qty(total))
            self.submit_order(order)
            self.side[iid], self.qty[iid] = side, new

    strategy = Rule()
    engine.add_strategy(strategy)
    t = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - t
    fills = len(engine.cache.orders_closed())
    engine.dispose()
    return seconds, events - WINDOW * n, fills


CASES = {"sigma-bot": case_sigma, "backtrader": case_backtrader, "nautilus": case_nautilus}
MODULES = {"backtrader": "backtrader", "nautilus": "nautilus_trader"}


def available(name: str) -> bool:
    import importlib.util

    return name not in MODULES or importlib.util.find_spec(MODULES[name]) is not None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", nargs="+", default=["real", "generated"], choices=["real", "generated"])
    ap.add_argument("--engines", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--case", nargs=2, metavar=("ENGINE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        engine, folder = args.case
        files = {f"{p.name.split('-')[0][:-4]}/USDT": p for p in sorted(Path(folder).glob("*-1h.csv"))}
        with tempfile.TemporaryDirectory() as tmp:
            seconds, events, fills = CASES[engine](files, Path(tmp))
        print(json.dumps({"seconds": seconds, "bar_events": events, "fills": fills}))
        return 0
    engines = []
    for e in args.engines:
        if available(e):
            engines.append(e)
        else:
            print(f"{e} is not installed: skipped (pip install -e \".[peers]\")")
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        markets = write_markets(Path(tmp), args.data, args.markets)
        for rnd in range(args.repeats):
            for market, files in markets.items():
                for e in engines:                              # interleaved: every engine once per round
                    folder = next(iter(files.values())).parent
                    out = subprocess.run([sys.executable, __file__, "--case", e, str(folder)], capture_output=True,
                                         text=True)
                    if out.returncode != 0:
                        print(f"{e} on {market} failed:\n{out.stderr[-2000:]}")
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    results.setdefault(market, {}).setdefault(e, []).append(r)
                    print(f"round {rnd + 1} {market} {e}: {r['seconds']:.2f} s, {r['bar_events']:,} bar-events, "
                          f"{r['fills']} fills", flush=True)
    print("\n| market | engine | bar-events | fills | median s | bar-events/s | vs sigma-bot |")
    print("|---|---|---:|---:|---:|---:|---:|")
    summary = {}
    for market, by in results.items():
        base = statistics.median(x["seconds"] for x in by["sigma-bot"]) if "sigma-bot" in by else None
        for e, rs in by.items():
            s = statistics.median(x["seconds"] for x in rs)
            ev = rs[0]["bar_events"]
            ratio = f"{base / s:.2f}x" if base else "-"
            summary[f"{market}/{e}"] = {"seconds": s, "bar_events": ev, "rate": ev / s, "runs": len(rs)}
            print(f"| {market} | {e} | {ev:,} | {rs[0]['fills']} | {s:.2f} | {ev / s:,.0f} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
