"""``python -m bot.retrain.worker JOB.json``: one retrain, in its own process, never in the daemon's.

    candles: the trade log (read only) + a REST backfill of the bars it lacks
        → train (``bot train``'s path: bot.retrain.training.train_checkpoint → strategies.workflow.fit_range)
        → candidate and serving model forecast the held-out bars → scores → gate (strategies.validation)
        → checkpoint (its scoring stage seeded from the held-out bars) and verdict, each written to a
          temporary file and renamed

The process dies with the daemon (``PR_SET_PDEATHSIG``), ignores Ctrl-C (the daemon stops it), and runs torch
on ``[model.retrain] threads`` threads so the engine keeps a core.  Exit 0 with a verdict, 1 with a failure
(the result file says why).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from bot.retrain.job import RetrainJob
from bot.store.files import read_only

log = logging.getLogger("bot.retrain.worker")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the daemon that started it dies (no orphaned training)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() == 1:      # the parent died before prctl took effect
        os._exit(1)


def logged_candles(db: str, run_id: str, symbols: Sequence[str], start_ms: int, end_ms: int
                   ) -> dict[str, dict[int, tuple[float, ...]]]:
    """``{symbol: {open_ms: (o, h, l, c, v)}}`` of the trade log's candles in ``[start_ms, end_ms)``."""
    out: dict[str, dict[int, tuple[float, ...]]] = {s: {} for s in symbols}
    with closing(read_only(db)) as conn:
        rows = conn.execute("SELECT symbol, bar_ms, open, high, low, close, volume FROM candles WHERE run_id = ? "
                            "AND bar_ms >= ? AND bar_ms < ?", (run_id, start_ms, end_ms)).fetchall()
    for sym, bar, o, h, lo, c, v in rows:
        if sym in out:
            out[sym][int(bar)] = (float(o), float(h), float(lo), float(c), float(v))
    return out


async def backfill(settings: Any, have: dict[str, dict[int, tuple[float, ...]]], start_ms: int, end_ms: int) -> int:
    """Fetch through REST the bars of ``[start_ms, end_ms)`` the trade log lacks (the history before the run)."""
    from bot.feeds.backfill import fetch_range, open_exchange
    from bot.feeds.retry import RetryPolicy

    f, tf = settings.feed, settings.market.timeframe_ms
    policy = RetryPolicy(max_attempts=f.rest_max_attempts, max_delay_s=f.rest_retry_max_s,
                         max_retry_after_s=f.rest_max_retry_after_s)
    n = 0
    async with open_exchange(f.rest_url, timeout_s=f.rest_timeout_s) as exchange:
        for sym, bars in have.items():
            missing = [t for t in range(start_ms, end_ms, tf) if t not in bars]
            if not missing:
                continue
            candles, _ = await fetch_range(exchange, sym, settings.market.timeframe, missing[0], missing[-1],
                                           policy=policy)
            for c in candles:
                if c.open_ms not in bars:
                    bars[c.open_ms] = (float(c.open), float(c.high), float(c.low), float(c.close), float(c.volume))
                    n += 1
    return n


def as_series(have: dict[str, dict[int, tuple[float, ...]]], tf_ms: int) -> list[Any]:
    from strategies.dataset import MarketSeries

    out = []
    for sym, bars in have.items():
        times = sorted(bars)
        out.append(MarketSeries(sym, np.asarray(times, dtype=np.int64),
                                np.asarray([bars[t] for t in times], dtype=np.float64).reshape(-1, 5), tf_ms))
    return out


def holdout_forecasts(predictor: Any, series: Sequence[Any], window: int, first_ms: int, last_ms: int, tf_ms: int
                      ) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Per symbol, (μ, σ, y) of ``predictor``'s forecasts at the bars ``[first_ms, last_ms]`` (each from the
    ``window`` bars ending there, as the engine's buffer holds them) and their outcomes log(c[t+1]/c[t])."""
    index = [{int(t): i for i, t in enumerate(s.open_ms)} for s in series]
    out: dict[str, tuple[list[float], list[float], list[float]]] = {s.symbol: ([], [], []) for s in series}
    for t in range(first_ms, last_ms + 1, tf_ms):
        syms, wins, ys = [], [], []
        for s, idx in zip(series, index):
            i, j = idx.get(t), idx.get(t + tf_ms)
            if i is None or j is None or i + 1 < window or s.open_ms[i + 1 - window] != t - (window - 1) * tf_ms:
                continue
            syms.append(s.symbol)
            wins.append(s.ohlcv[i + 1 - window:i + 1])
            ys.append(math.log(s.ohlcv[j, 3] / s.ohlcv[i, 3]))
        if not syms:
            continue
        for f, y in zip(predictor.predict(t, syms, np.stack(wins)), ys):
            m, sd, yy = out[f.symbol]
            m.append(f.mu)
            sd.append(f.sigma)
            yy.append(y)
    return out


def assessment_of(fc: dict[str, tuple[list[float], list[float], list[float]]]) -> dict[str, dict[str, list[float]]]:
    """The scoring stage's seeds from held-out forecasts (as :func:`strategies.workflow.assessment_seed`)."""
    from strategies.skill import skill_stats

    out = {}
    for sym, (mu, sd, y) in fc.items():
        if len(mu) < 10:
            continue
        z = np.abs(np.asarray(y) - np.asarray(mu)) / np.asarray(sd)
        q68, q95 = (float(q) for q in np.quantile(z, [0.68, 0.95]))
        out[sym] = {"skill": skill_stats(mu, y).to_list(),
                    "calibration": [q68, max(q95, q68 * 1.0001), float(np.mean(z * z))]}
    return out


def pooled(fc: dict[str, tuple[list[float], list[float], list[float]]]
           ) -> tuple[list[float], list[float], list[float]]:
    """Every symbol's (μ, σ, y) in one sequence each."""
    mu, sd, y = ([v for sym in sorted(fc) for v in fc[sym][k]] for k in range(3))
    return mu, sd, y


def serving_predictor(settings: Any, job: RetrainJob, device: Any) -> Any:
    from strategies.baseline import EwmaMomentumPredictor
    from strategies.checkpoint import load_checkpoint
    from strategies.predictor import TorchPredictor

    if not job.serving_checkpoint:
        b = settings.model.baseline
        return EwmaMomentumPredictor(b.momentum_bars, b.mu_shrink, b.ewma_lambda, b.sigma_floor)
    return TorchPredictor(load_checkpoint(job.serving_checkpoint, device), device, cuda_graph=False,
                          sigma_floor=settings.model.baseline.sigma_floor)


def run(job: RetrainJob) -> dict[str, Any]:
    """Train, score, gate and save; the verdict as the result file holds it."""
    import torch

    from bot.config import Settings
    from bot.retrain.training import train_checkpoint
    from strategies.checkpoint import load_checkpoint, save_checkpoint
    from strategies.predictor import TorchPredictor, resolve_device
    from strategies.validation import GateRule, gate, score

    settings = Settings().with_overrides(**json.loads(job.settings_json))
    r = settings.model.retrain
    if r.threads:
        torch.set_num_threads(r.threads)
    device = resolve_device(r.device)
    tf, m = settings.market.timeframe_ms, settings.market
    have = logged_candles(job.db, job.run_id, m.symbols, job.data_from_ms, job.holdout_to_ms)
    fetched = asyncio.run(backfill(settings, have, job.data_from_ms, job.holdout_to_ms))
    series = as_series(have, tf)
    log.info("retrain v%d: %d bars from the trade log, %d through REST", job.version,
             sum(len(b) for b in have.values()) - fetched, fetched)
    out = Path(job.checkpoint)
    trained = out.with_name(out.name + ".trained.tmp")
    t0 = time.perf_counter()
    summary = train_checkpoint(settings, job.kind, series, job.train_from_ms, job.holdout_from_ms, trained, device)
    seconds = time.perf_counter() - t0
    ckpt = load_checkpoint(trained, device)
    candidate = TorchPredictor(ckpt, device, cuda_graph=False, sigma_floor=settings.model.baseline.sigma_floor)
    first, last = job.holdout_from_ms - tf, job.holdout_to_ms - 2 * tf
    cand_fc = holdout_forecasts(candidate, series, m.window, first, last, tf)
    serv_fc = holdout_forecasts(serving_predictor(settings, job, device), series, m.window, first, last, tf)
    sk = settings.forecast.skill
    cand, serv = score(*pooled(cand_fc), z=sk.z, max_scale=sk.max_scale), score(*pooled(serv_fc), z=sk.z,
                                                                                 max_scale=sk.max_scale)
    verdict = gate(cand, serv, GateRule(r.nll_margin, r.coverage_tolerance, r.skill_tolerance, sk.z, sk.max_scale))
    scores = {"candidate": cand.to_dict(), "serving": serv.to_dict()}
    # The scoring stage of a swapped-in model starts from what the held-out bars showed of it.
    new_summary = {**ckpt.summary, "assessment": assessment_of(cand_fc), "holdout": scores,
                   "retrain": {"version": job.version, "trigger": job.trigger, "seconds": round(seconds, 2)}}
    save_checkpoint(out, ckpt.forecaster, scaler=ckpt.scaler, symbols=ckpt.symbols, timeframe=ckpt.timeframe,
                    data_range=ckpt.data_range, summary=new_summary, settings_json=ckpt.settings_json)
    trained.unlink(missing_ok=True)
    from bot.retrain.checkpoints import sha256_of

    return {"version": job.version, "status": "accepted" if verdict.accepted else "rejected",
            "reason": verdict.reason, "scores": scores, "checkpoint": str(out), "sha256": sha256_of(out),
            "train_seconds": round(seconds, 3), "device": str(device),
            "train_range": summary.get("train_range"), "val_range": summary.get("val_range")}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the daemon decides when this process stops
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = RetrainJob.from_json(Path(args[0]).read_text(encoding="utf-8"))
    result_path = Path(job.result)
    try:
        result = run(job)
    except Exception as exc:   # every failure becomes a recorded one: the serving model stays
        log.exception("retrain v%d failed", job.version)
        write_atomically(result_path, json.dumps({"version": job.version, "status": "failed",
                                                  "reason": f"{type(exc).__name__}: {exc}"[:1000]}))
        return 1
    write_atomically(result_path, json.dumps(result, sort_keys=True))
    log.info("retrain v%d %s: %s", job.version, result["status"], result["reason"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
