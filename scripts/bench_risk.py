"""Time ``RiskManager.decide`` per bar at 100 symbols, split into the VaR budget and everything else.

    python scripts/bench_risk.py [--symbols 100] [--bars 200] [--repeats 5]

The bars are realistic: a synthetic market (``generate_market``), the baseline predictor's forecasts on
(n, 128, 5) float windows, Decimal closes as prices, and Decimal positions and equity that follow the
decisions (every intent filled at the close, cash kept exactly).  That trajectory is recorded once, then
replayed through fresh managers, so every manager sees the same inputs bar by bar.

Two managers are timed side by side, interleaved repeat by repeat: the live ``risk.manager.RiskManager``
and the frozen copy of the code before it was made faster (``tests/risk/_reference_manager.py``).  For
each, "total" is ``decide`` as it is; "rest" is ``decide`` with ``_var_budget`` replaced by a no-op (the
part outside the VaR budget: scoring, state, gate, sizing, caps and the order quantities); "VaR" is
total − rest.  The "rest" replays all run first, before any VaR computation has started BLAS threads.
Figures are medians over repeats of the mean milliseconds per bar.  The replays are also checked to give
identical decisions, intents and states.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests" / "risk"))

WINDOW = 128
H = 3_600_000
START_MS = 1_704_067_200_000
STEP = Decimal("0.00001")


def symbols(n: int) -> list[str]:
    named = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    return named[:n] if n <= 3 else named + [f"S{i:03d}/USDT" for i in range(n - 3)]


Bar = tuple[int, list[Any], np.ndarray, dict[str, Decimal], dict[str, Decimal], Decimal]


def record(n_symbols: int, bars: int) -> list[Bar]:
    """The inputs of ``bars`` consecutive decisions, positions following the decisions."""
    from bot.config import GateSettings, RiskSettings
    from bot.feeds.replay.synthetic import generate_market
    from bot.runs.backtest import series_floats
    from risk.manager import RiskManager
    from risk.state import RiskState
    from strategies.baseline import EwmaMomentumPredictor

    syms = symbols(n_symbols)
    data = generate_market(syms, WINDOW + bars, START_MS, seed=1)
    floats = np.stack([series_floats(data[s]) for s in syms])          # (n, T, 5)
    predictor = EwmaMomentumPredictor()
    cash = Decimal("10000")
    positions = {s: Decimal(0) for s in syms}
    # The cost-blind rule: it trades at most bars, so sizing, VaR and orders are all exercised (and it is the
    # rule tests/risk/_reference_manager.py implements); the net-edge rule costs the same per symbol.
    manager = RiskManager(RiskSettings(gate=GateSettings(rule="strength")), syms, H, STEP, RiskState.initial(cash))
    out: list[Bar] = []
    for k in range(bars):
        t = WINDOW - 1 + k
        bar_ms = START_MS + t * H
        windows = np.ascontiguousarray(floats[:, t - WINDOW + 1:t + 1])
        prices = {s: Decimal(data[s].close[t]) for s in syms}
        equity = cash + sum(positions[s] * prices[s] for s in syms)
        forecasts = predictor.predict(bar_ms, syms, windows)
        out.append((bar_ms, forecasts, windows, dict(positions), prices, equity))
        r = manager.decide(bar_ms, forecasts, windows, positions, prices, equity)
        for i in r.intents:
            positions[i.symbol] = i.target_qty
            cash -= i.delta * prices[i.symbol]
    return out


def replay(cls: type, bars: list[Bar], n_symbols: int, no_var: bool) -> tuple[float, list[Any]]:
    """Mean seconds per ``decide`` over ``bars`` with a fresh manager, and its outputs."""
    from bot.config import GateSettings, RiskSettings
    from risk.state import RiskState

    manager = cls(RiskSettings(gate=GateSettings(rule="strength")), symbols(n_symbols), H, STEP,
                  RiskState.initial(Decimal("10000")))
    if no_var:
        manager._var_budget = lambda target, *a: (target, [], ())
    outs = []
    elapsed = 0.0
    for bar_ms, forecasts, windows, positions, prices, equity in bars:
        t0 = time.perf_counter()
        r = manager.decide(bar_ms, forecasts, windows, positions, prices, equity)
        elapsed += time.perf_counter() - t0
        outs.append(r)
    return elapsed / len(bars), outs


def same(a: Any, b: Any) -> bool:
    """Decisions, intents, steps, state and entry bars identical (Decimals by their str form)."""
    return (repr(a.decisions) == repr(b.decisions) and repr(a.intents) == repr(b.intents)
            and repr(a.steps) == repr(b.steps) and a.state == b.state and a.entry_bars == b.entry_bars)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import _reference_manager

    from risk import manager as live

    bars = record(args.symbols, args.bars)
    impls = {"live": live.RiskManager, "reference": _reference_manager.RiskManager}
    times: dict[tuple[str, bool], list[float]] = {(k, nv): [] for k in impls for nv in (False, True)}
    outputs: dict[tuple[str, bool], list[Any]] = {}
    # The parts without VaR first: after the VaR's numpy calls, BLAS threads that spin on a small machine
    # would slow the pure-Python part down.
    for no_var in (True, False):
        for _ in range(args.repeats):
            for name, cls in impls.items():
                dt, outs = replay(cls, bars, args.symbols, no_var)
                times[name, no_var].append(dt)
                outputs[name, no_var] = outs
    identical = all(same(a, b) for nv in (False, True)
                    for a, b in zip(outputs["live", nv], outputs["reference", nv], strict=True))
    print(f"RiskManager.decide: {args.symbols} symbols, {args.bars} bars, window {WINDOW}, "
          f"median of {args.repeats} (ms per bar)")
    print(f"{'manager':<10} {'total':>8} {'rest':>8} {'VaR':>8}")
    med = {}
    for name in impls:
        total = statistics.median(times[name, False])
        rest = statistics.median(times[name, True])
        med[name] = (total, rest)
        print(f"{name:<10} {total * 1e3:>8.2f} {rest * 1e3:>8.2f} {(total - rest) * 1e3:>8.2f}")
    (lt, lr), (rt, rr) = med["live"], med["reference"]
    print(f"speed-up   {rt / lt:>7.2f}x {rr / lr:>7.2f}x")
    print(f"outputs identical: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
