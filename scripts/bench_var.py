"""The VaR budget step in isolation: WindowRisk, one book's six estimates, deleveraging, per bar.

    python scripts/bench_var.py [--symbols 100] [--bars 400] [--repeats 3]

The inputs are the real ones: a short baseline backtest (100 synthetic symbols, window 128, the
backtest benchmark's market) runs first with ``RiskManager._var_budget`` wrapped to record each bar's
target book, returns window (127, n), μ, σ and equity.  Each recorded bar is then replayed, timed:

- ``WindowRisk(...)``: the window-only work (complete rows, correlation and its PSD check);
- ``window(book)``: one book's model, historical and Cornish-Fisher VaR at horizons 1 and 24;
- ``deleverage(...)``: as the manager calls it (its binding risk function, its budget and step),
  the WindowRisk construction included;
- ``_var_budget``: the manager's whole step (deleveraging plus the final book's estimates).

Per bar, the median over ``--repeats`` replays; printed: the median and the mean over bars (the mean
is what a backtest's throughput sees: the first bars of a run deleverage a full book in ~100 steps,
most later bars measure one or two books), and the mean trial books per bar.  Timings are CPU
wall-clock on a shared machine: compare runs side by side (OPENBLAS_NUM_THREADS=1 steadies them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

WINDOW = 128
START_MS = 1_704_067_200_000


def capture(n_symbols: int, bars: int) -> tuple[Any, list[dict[str, Any]]]:
    """Run a short backtest and record every _var_budget call's inputs (and one manager)."""
    from bot.config import Settings
    from bot.feeds.replay.synthetic import generate_market
    from bot.runs.backtest import HistoricalBars, PrecomputedBaseline, run_backtest
    from risk.manager import RiskManager
    from strategies.baseline import EwmaMomentumPredictor

    named = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    syms = named[:n_symbols] if n_symbols <= 3 else named + [f"S{i:03d}/USDT" for i in range(n_symbols - 3)]
    data = generate_market(syms, WINDOW + bars, START_MS, seed=1)
    calls: list[dict[str, Any]] = []
    managers: list[Any] = []
    original = RiskManager._var_budget

    def recording(self, target, forced, syms_, returns, mu, sigma, eq, reasons):  # type: ignore[no-untyped-def]
        calls.append({"target": np.array(target), "returns": np.array(returns), "mu": np.array(mu),
                      "sigma": np.array(sigma), "eq": eq, "syms": list(syms_)})
        managers[:] = [self]
        return original(self, target, forced, syms_, returns, mu, sigma, eq, reasons)

    RiskManager._var_budget = recording  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings().with_overrides(run={"db": str(Path(tmp) / "var.sqlite"), "id": "bench"},
                                                 market={"symbols": syms, "window": WINDOW})
            predictor = PrecomputedBaseline(EwmaMomentumPredictor(), HistoricalBars(data, syms, 3_600_000), WINDOW)
            asyncio.run(run_backtest(settings, data, START_MS + WINDOW * 3_600_000, predictor=predictor))
    finally:
        RiskManager._var_budget = original  # type: ignore[method-assign]
    return managers[0], calls


def timed(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from risk.deleverage import deleverage
    from risk.var import WindowRisk

    manager, calls = capture(args.symbols, args.bars)
    v = manager.s.var
    rows: dict[str, list[float]] = {"WindowRisk(...)": [], "window(book)": [], "deleverage(...)": [],
                                    "_var_budget": []}
    trials: list[int] = []
    steps: list[int] = []
    for c in calls:
        def build(c: dict[str, Any] = c) -> WindowRisk:
            return WindowRisk(c["returns"], c["mu"], c["sigma"], horizons=(1, 24), alpha=v.alpha)

        window = build()
        binding = manager._binding(window)
        counter = [0]

        def counted(w: np.ndarray, binding: Any = binding) -> Any:
            counter[0] += 1
            return binding(w)

        result = deleverage(c["target"], counted, v.budget_1 * c["eq"], step=v.step)
        trials.append(counter[0])
        steps.append(len(result.steps))

        def delev(c: dict[str, Any] = c) -> Any:
            w = build(c)
            return deleverage(c["target"], manager._binding(w), v.budget_1 * c["eq"], step=v.step)

        def budget(c: dict[str, Any] = c) -> Any:
            return manager._var_budget(c["target"].copy(), np.zeros(len(c["syms"]), dtype=bool), c["syms"],
                                       c["returns"], c["mu"], c["sigma"], c["eq"], {s: [] for s in c["syms"]})

        rows["WindowRisk(...)"].append(timed(build, args.repeats))
        rows["window(book)"].append(timed(lambda c=c, window=window: window(c["target"]), args.repeats))
        rows["deleverage(...)"].append(timed(delev, args.repeats))
        rows["_var_budget"].append(timed(budget, args.repeats))

    n = calls[0]["returns"].shape
    print(f"VaR budget benchmark: {len(calls)} recorded bars, returns window {n}, median of {args.repeats} per bar; "
          f"trial books per bar: mean {statistics.mean(trials):.1f}, steps per bar: mean {statistics.mean(steps):.1f}")
    print(f"{'step':<17} {'median ms':>10} {'mean ms':>10}")
    for name, ts in rows.items():
        print(f"{name:<17} {1e3 * statistics.median(ts):>10.3f} {1e3 * statistics.mean(ts):>10.3f}")


if __name__ == "__main__":
    main()
