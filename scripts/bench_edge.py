"""Trading value beside forecast quality: does a decision trade only on an edge that pays its costs?

    python scripts/bench_edge.py [--quick] [--models baseline cnn_gru ...] [--markets noedge leadlag real]
                                 [--blind-keys legacy|new] [--epochs N] [--max-steps N]
                                 [--shared ../shared] [--out DIR] [--json edge.json]

Three markets, hourly bars (issue 12's benchmarks):

* ``noedge``: the generated random walk of :func:`~bot.feeds.replay.synthetic.generate_market`
  (GARCH(1,1) volatility, Student-t innovations, no predictable mean), BTC/USDT and ETH/USDT, one year.
* ``leadlag``: :func:`~bot.feeds.replay.synthetic.generate_lead_lag_market`, the same market with a planted
  edge: ETH's next return = 0.3 × BTC's last return + its own GARCH-t shock.
* ``real``: Binance BTC/ETH/XRP from ``shared/data``: models trained on 2023-06-01 … 2024-12-31, backtested
  on 2025 (skipped, saying so, when the files are not there).

On the generated markets every learned model is trained (in process, as ``bot train`` does) on the first
70 % of the bars and backtested (``bot.runs.backtest.run_backtest``, the engine ``bot backtest`` runs) on the
last 30 %, the ``market.window`` bars before the split only warming the windows; the baseline needs no
training.  Each model is backtested under each decision of ``DECISIONS`` below, and every figure is
read back from the trade log by :func:`bot.reporting.summary.trading_summary` (through
:func:`bot.runs.walkforward.trade_range`), which takes them from the review ``bot report`` prints.
"before fees" is the net return plus fees / starting equity (the same fills without their fees;
slippage stays in the fill prices).

Two decisions named ``default`` and ``cost-blind`` are compared; their TOML is the one place to change
what they mean.  With ``--blind-keys legacy`` (code before issue 12) the cost-blind decision *is* the
shipped config, so it is the same run as the default (run once, reported in both rows); with
``--blind-keys new`` the cost-blind decision switches off the net-edge rule, skill scaling, calibration and
the skill monitor.  The default is ``new`` where the config knows a ``[forecast]`` section.  A decision
whose settings equal another's is run once.

CPU training limits (``TRAIN`` and ``--quick`` below) keep the whole script within minutes on two cores;
the model shapes are the shipped defaults.  Timings of every stage are printed as it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bot.config import Settings  # noqa: E402

# -- what is compared: edit here ---------------------------------------------------------------------------

# TOML merged over the shipped defaults, per set of config keys the code knows.
TODAYS_GATE = """
[risk.gate]
sigma_max = 0.02
long_entry_strength = 0.1
short_entry_strength = 0.15
exit_strength = 0.03
min_hold_bars = 0
"""
DECISIONS: dict[str, dict[str, str]] = {
    # Code before issue 12: the shipped config is the cost-blind decision.
    "legacy": {"default": "", "cost-blind": ""},
    # After issue 12: the shipped config decides on net edge; the cost-blind one is today's behaviour.
    "new": {
        "default": "",
        "cost-blind": TODAYS_GATE.replace("[risk.gate]\n", '[risk.gate]\nrule = "strength"\n') + """
[forecast.skill]
enabled = false

[forecast.calibration]
enabled = false

[forecast.monitor]
enabled = false
""",
    },
}

# Training limits for a 2-core CPU ([model.train] keys); --epochs / --max-steps override them.
TRAIN = {"epochs": 6, "max_steps_per_epoch": 100, "patience": 2}
QUICK_TRAIN = {"epochs": 1, "max_steps_per_epoch": 10, "patience": 1}
# --quick also cuts the markets: generated bars, and the real backtest's end.
QUICK_BARS = 2_400
QUICK_REAL_END = "2025-02-01"

MODELS = ("baseline", "cnn_gru", "lstm", "knn", "fusion", "multi_asset")
MARKETS = ("noedge", "leadlag", "real")

SYNTH_START_MS = 1_704_067_200_000          # 2024-01-01 00:00 UTC
SYNTH_BARS = 8_760                          # one year of hours
SYNTH_SYMBOLS = ("BTC/USDT", "ETH/USDT")    # leader, follower in the lead-lag market
SYNTH_SEED = {"noedge": 12, "leadlag": 12}
TRAIN_SHARE = 0.7
LEAD_LAG_BETA = 0.3
REAL_SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")
REAL_TRAIN = ("2023-06-01", "2025-01-01")   # [from, to)
REAL_TEST = ("2025-01-01", "2026-01-01")
H = 3_600_000


# -- plumbing ----------------------------------------------------------------------------------------------


@dataclass
class Timings:
    """Wall seconds of each stage, printed as each one ends."""

    stages: list[tuple[str, float]] = field(default_factory=list)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
        self.stages.append((name, seconds))
        print(f"  [{seconds:7.1f} s] {name}", flush=True)
        return out


@dataclass(frozen=True)
class Market:
    name: str
    files: dict[str, Path]              # symbol -> CSV file
    train: tuple[int, int]              # [from, to) in ms
    test: tuple[int, int]
    note: str


def decision_overrides(toml_text: str) -> dict[str, Any]:
    """The decision's TOML as nested sections (validated later, with everything else, by Settings)."""
    return tomllib.loads(toml_text)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``, sub-tables merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_settings(decision: str, keys: str, extra: dict[str, Any], train: dict[str, Any]) -> Settings:
    """Shipped defaults ⊕ the decision's TOML ⊕ this run's market, model and trade log."""
    data = merge(json.loads(Settings().to_json()), decision_overrides(DECISIONS[keys][decision]))
    data = merge(data, extra)
    data = merge(data, {"model": {"train": train}})
    # with_overrides validates every section as a config file is (unknown keys stop here, named).
    return Settings().with_overrides(**data)


def default_keys() -> str:
    """``new`` on code whose config knows issue 12's ``[forecast]`` section, else ``legacy``."""
    return "new" if "forecast" in json.loads(Settings().to_json()) else "legacy"


def decided_config(s: Settings) -> str:
    """The settings that decide trades: everything but the trade log's path and run id."""
    data = json.loads(s.to_json())
    data["run"].pop("db"), data["run"].pop("id")
    return json.dumps(data, sort_keys=True)


def day_ms(text: str) -> int:
    from bot.cli.models import parse_day

    ms = parse_day(text)
    assert ms is not None
    return ms


# -- markets -----------------------------------------------------------------------------------------------


def make_synthetic(name: str, root: Path, n_bars: int) -> Market:
    from bot.feeds.replay.csvdata import write_ohlcv_csv
    from bot.feeds.replay.synthetic import generate_lead_lag_market, generate_market

    if name == "noedge":
        data = generate_market(SYNTH_SYMBOLS, n_bars, SYNTH_START_MS, seed=SYNTH_SEED[name])
        note = "GARCH(1,1)-t random walk, no predictable mean"
    else:
        data = generate_lead_lag_market(SYNTH_SYMBOLS, n_bars, SYNTH_START_MS, seed=SYNTH_SEED[name],
                                        beta=LEAD_LAG_BETA)
        note = f"{SYNTH_SYMBOLS[1]} next return = {LEAD_LAG_BETA} x {SYNTH_SYMBOLS[0]} last + GARCH-t noise"
    folder = root / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for sym, series in data.items():
        files[sym] = folder / f"{sym.replace('/', '')}-1h.csv"
        write_ohlcv_csv(files[sym], series)
    split = SYNTH_START_MS + round(TRAIN_SHARE * n_bars) * H
    end = SYNTH_START_MS + n_bars * H
    return Market(name, files, (SYNTH_START_MS, split), (split, end),
                  f"{note}; {len(data)} symbols x {n_bars} bars, train first {TRAIN_SHARE:.0%}, test the rest")


def find_real(shared: Path, quick: bool) -> Market | None:
    from bot.cli.models import find_csv
    from bot.errors import DataError

    folders = [shared / "data", shared]
    for folder in folders:
        if folder.is_dir():
            try:
                files = find_csv([folder], REAL_SYMBOLS, "1h")
            except DataError:
                continue
            end = QUICK_REAL_END if quick else REAL_TEST[1]
            return Market("real", files, (day_ms(REAL_TRAIN[0]), day_ms(REAL_TRAIN[1])),
                          (day_ms(REAL_TEST[0]), day_ms(end)),
                          f"Binance {'/'.join(s.split('/')[0] for s in REAL_SYMBOLS)}, trained {REAL_TRAIN[0]} .. "
                          f"{REAL_TRAIN[1]} (excl.), tested {REAL_TEST[0]} .. {end} (excl.)")
    return None


# -- one market: train, backtest, read back ------------------------------------------------------------------


def min_window(model: str, settings: Settings, symbols: Sequence[str]) -> int:
    """market.window the model needs: its lookback + the features' warm-up (the shipped window at least)."""
    if model == "baseline":
        return settings.market.window
    from strategies.features import N_FEATURES, WARMUP
    from strategies.models.registry import new_forecaster

    lookback = new_forecaster(model, settings.model, N_FEATURES, tuple(symbols)).lookback
    return max(settings.market.window, lookback + WARMUP)


def bench_market(market: Market, models: Sequence[str], keys: str, train: dict[str, Any], root: Path,
                 timings: Timings) -> list[dict[str, Any]]:
    from bot.cli.models import load_market, train_checkpoint
    from bot.feeds.replay.csvdata import load_ohlcv_csv
    from bot.runs.walkforward import trade_range
    from strategies.predictor import resolve_device

    symbols = list(market.files)
    series = timings.run(f"{market.name}: load CSV for training",
                         lambda: load_market(list(market.files.values()), symbols, "1h"))
    data = timings.run(f"{market.name}: load CSV for backtests",
                       lambda: {s: load_ohlcv_csv(p, H) for s, p in market.files.items()})
    # Only the test range and the warm-up before it reach the engine.
    lo = market.test[0] - 1_000 * H
    data = {s: d.slice(int(np.searchsorted(d.open_ms, lo)), int(np.searchsorted(d.open_ms, market.test[1])))
            for s, d in data.items()}
    device = resolve_device("auto")
    rows: list[dict[str, Any]] = []
    done: dict[str, tuple[str, Any]] = {}      # decided config -> (decision, summary) already run
    for model in models:
        extra: dict[str, Any] = {"market": {"symbols": symbols}, "model": {"name": model}}
        if model != "baseline":
            ckpt = root / "models" / market.name / f"{model}.pt"
            base = build_settings("default", keys, extra, train)
            fit = timings.run(f"{market.name}: train {model}", lambda: train_checkpoint(
                base, model, series, market.train[0], market.train[1], ckpt, device))
            print("    fit: " + ", ".join(f"{k} {round(v, 4) if isinstance(v, float) else v}" for k, v in fit.items()
                                         if isinstance(v, (int, float, str)) and k not in ("device", "seconds")),
                  flush=True)
            extra["model"]["checkpoint"] = str(ckpt)
        for decision in DECISIONS[keys]:
            s = build_settings(decision, keys, extra, train)
            s = s.with_overrides(market={"window": min_window(model, s, symbols)})
            key = decided_config(s)
            if key in done:
                same_as, summary = done[key]
                print(f"    {model} {decision}: the same settings as {same_as}, not run again", flush=True)
            else:
                db = root / "logs" / market.name / f"{model}-{decision}.sqlite"
                db.parent.mkdir(parents=True, exist_ok=True)
                db.unlink(missing_ok=True)
                s = s.with_overrides(run={"db": str(db), "id": f"{model}-{decision}"})
                summary = timings.run(f"{market.name}: backtest {model} {decision} and read it back",
                                      lambda: asyncio.run(trade_range(s, data, market.test[0], market.test[1])))
                done[key] = (decision, summary)
                same_as = None
            figures = summary.to_json() if summary else {}
            figures["forecast_model"] = figures.pop("model", None)
            rows.append({**figures, "market": market.name, "model": model, "decision": decision, "same_as": same_as})
    return rows


def buy_and_hold_line(market: Market) -> str:
    """Equal-weight buy-and-hold of all the market's symbols over the test range (bot.analytics)."""
    from bot.analytics.performance import buy_and_hold
    from bot.feeds.replay.csvdata import load_ohlcv_csv

    closes = {}
    for s, p in market.files.items():
        d = load_ohlcv_csv(p, H)
        inside = (d.open_ms >= market.test[0]) & (d.open_ms < market.test[1])
        closes[s] = np.asarray(d.close, dtype=np.float64)[inside]
    n = min(len(c) for c in closes.values())
    return f"{buy_and_hold({s: c[:n] for s, c in closes.items()})[-1] - 1:+.2%}"


# -- output ------------------------------------------------------------------------------------------------


def _pct(v: Any, spec: str = ".2%") -> str:
    return "" if v is None else format(v, spec)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = ("| market | model | decision | bars with a fill | fills | fees / start equity | net return | "
            "before fees | turnover | Sharpe | NLL | EWMA NLL (same) | NLL - EWMA | 68 % cov. | 95 % cov. | "
            "skill alarms |")
    lines = [head, "|" + "---|" * 3 + "---:|" * 13]
    for r in rows:
        if "net_return" not in r:
            lines.append(f"| {r['market']} | {r['model']} | {r['decision']} | no equity mark |" + " |" * 12)
            continue
        gap = (None if r["baseline_nll"] is None or r["model_nll_same"] is None
               else r["model_nll_same"] - r["baseline_nll"])
        lines.append(
            f"| {r['market']} | {r['model']} | {r['decision']}{' (= ' + r['same_as'] + ')' if r['same_as'] else ''} "
            f"| {_pct(r['fill_share'], '.1%')} | {r['fills']:,} | {_pct(r['fees_share'])} | "
            f"**{_pct(r['net_return'], '+.2%')}** | {_pct(r['before_fees'], '+.2%')} | {r['turnover']:.1f}x | "
            f"{_pct(r['sharpe'], '.2f')} | {_pct(r['nll'], '.4f')} | {_pct(r['baseline_nll'], '.4f')} | "
            f"{_pct(gap, '+.4f')} | {_pct(r['cov68'], '.1%')} | {_pct(r['cov95'], '.1%')} | {r['skill_alarms']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--markets", nargs="+", choices=MARKETS, default=list(MARKETS))
    ap.add_argument("--blind-keys", choices=tuple(DECISIONS), default=default_keys(),
                    help="config keys of the cost-blind decision: legacy (code before issue 12: the shipped config) "
                         "or new (issue 12's keys switched off); default: new where the config has a [forecast] "
                         f"section, else legacy (here: {default_keys()})")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: {QUICK_TRAIN} training, {QUICK_BARS} generated bars, real test to "
                         f"{QUICK_REAL_END}")
    ap.add_argument("--epochs", type=int, default=None, help="model.train.epochs")
    ap.add_argument("--max-steps", type=int, default=None, help="model.train.max_steps_per_epoch")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                    help="the team's shared folder, with data/BTCUSDT-1h.csv.gz etc. (default ../shared)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: on a shared 2-core machine one thread trains and serves "
                         "the models 3-6x faster than two, and the backtest's writer process has a core)")
    ap.add_argument("--out", type=Path, default=None, help="keep CSV files, checkpoints and trade logs here")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log the engine's warnings (skill alarms etc.); they are counted in the table either way")
    ap.add_argument("--json", type=Path, default=None, help="write rows, timings and settings as JSON here")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train = dict(QUICK_TRAIN if args.quick else TRAIN)
    if args.epochs is not None:
        train["epochs"] = args.epochs
    if args.max_steps is not None:
        train["max_steps_per_epoch"] = args.max_steps
    from bot.errors import ConfigError

    for decision in DECISIONS[args.blind_keys]:   # a key this code does not know stops here, named
        try:
            build_settings(decision, args.blind_keys, {}, train)
        except ConfigError as exc:
            print(f"bench_edge: the {decision!r} decision of --blind-keys {args.blind_keys} does not load on this "
                  f"code: {exc}\n(--blind-keys legacy runs on code without issue 12's keys)", file=sys.stderr)
            return 2
    n_bars = QUICK_BARS if args.quick else SYNTH_BARS
    import torch

    torch.set_num_threads(args.threads)
    print(f"bench_edge: models {', '.join(args.models)}; markets {', '.join(args.markets)}; decisions "
          f"{', '.join(DECISIONS[args.blind_keys])} ({args.blind_keys} keys); training {train}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    timings = Timings()
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_edge_") as tmp:
        root = args.out or Path(tmp)
        for name in args.markets:
            if name == "real":
                market = find_real(args.shared, args.quick)
                if market is None:
                    msg = (f"real: skipped, no BTC/ETH/XRP 1h CSV files in {args.shared}/data "
                           "(real Binance data is only in the team workspace; pass --shared)")
                    print(msg, flush=True)
                    notes.append(msg)
                    continue
            else:
                market = timings.run(f"{name}: generate and write CSV", lambda: make_synthetic(name, root, n_bars))
            print(f"{market.name}: {market.note}", flush=True)
            rows += bench_market(market, args.models, args.blind_keys, train, root, timings)
            notes.append(f"{market.name}: {market.note}; buy & hold over the test range {buy_and_hold_line(market)}")
    total = time.perf_counter() - t0
    print()
    print(markdown(rows))
    print()
    for n in notes:
        print(f"- {n}")
    print("- before fees = net return + fees / start equity; NLL in nats of log returns (fractions), lower is "
          "better; EWMA NLL (same) = persistence/EWMA on the same forecasts")
    print(f"\ntotal {total:.0f} s ({total / 60:.1f} min); slowest stages:")
    for name, seconds in sorted(timings.stages, key=lambda x: -x[1])[:8]:
        print(f"  {seconds:7.1f} s  {name}")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": rows, "notes": notes, "timings": timings.stages, "total_seconds": round(total, 1),
            "train": train, "blind_keys": args.blind_keys, "decisions": DECISIONS[args.blind_keys],
            "command": "python scripts/bench_edge.py " + " ".join(argv if argv is not None else sys.argv[1:])},
            indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
