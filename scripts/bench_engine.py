"""Replay throughput and kline-to-commit latency through the whole engine, with the baseline predictor.

    python scripts/bench_engine.py [--repeats 3]

Throughput: the replay server streams as fast as it can (no pause between bars);
bars/s = bars decided / seconds in the engine loop (warm-up excluded).
Latency: the replay is paced so the engine is not saturated; each closed kline's
latency is from its websocket frame's arrival to the commit of its bar's rows.
Bars that queued up during the warm-up backfill are left out (the first
WARMUP_BARS bars): their wait is the backfill's, not the engine's.
Everything is real: websocket over loopback, ccxt warm-up over HTTP, SQLite file.
The replay exchange runs in its own process (``bot replay-server``), as a real
exchange would, so its JSON encoding does not share the engine's event loop.
Medians over --repeats runs are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.runs.daemon import run_daemon  # noqa: E402

WINDOW = 128
WARMUP_BARS = 150
REPO = Path(__file__).resolve().parents[1]


def symbols(n: int) -> list[str]:
    named = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    return named[:n] if n <= 3 else named + [f"S{i:03d}/USDT" for i in range(n - 3)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def one_run(n_symbols: int, bars: int, bar_interval_s: float, db: Path) -> tuple[float, list[float]]:
    syms = symbols(n_symbols)
    port = free_port()
    speed = 3600.0 / bar_interval_s if bar_interval_s > 0 else 1e12  # 1e12x: no pause between bars
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "replay-server", "--symbols", *syms, "--synthetic-bars", str(bars + 10),
        "--history", str(WINDOW), "--speed", str(speed), "--port", str(port), "--seed", "1",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        while b"rest_url" not in await asyncio.wait_for(server.stdout.readline(), 60):
            pass
        settings = Settings().with_overrides(
            run={"db": str(db), "id": "bench"}, market={"symbols": syms, "window": WINDOW},
            feed={"ws_url": f"ws://127.0.0.1:{port}/stream", "rest_url": f"http://127.0.0.1:{port}/api/v3",
                  "assembly_timeout_s": 5.0})
        result = await run_daemon(settings, asyncio.Event(), max_bars=bars)
    finally:
        server.terminate()
        await server.wait()
    s = result.stats
    if s.bars != bars:
        raise RuntimeError(f"decided {s.bars} of {bars} bars")
    return s.bars / s.run_seconds, s.latencies[WARMUP_BARS * n_symbols:]


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    cases = [(3, 2000, 0.01), (100, 300, 0.15)]  # (symbols, bars, paced seconds per bar for latency)
    print(f"engine replay benchmark, baseline predictor, window {WINDOW}, median of {args.repeats} runs")
    print(f"{'symbols':>7} {'bars':>5} {'bars/s':>9} {'candles/s':>10} {'lat p50 ms':>11} {'lat p99 ms':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n, bars, paced in cases:
            rates, p50s, p99s = [], [], []
            for r in range(args.repeats):
                rate, _ = asyncio.run(one_run(n, bars, 0.0, Path(tmp) / f"t{n}-{r}.sqlite"))
                _, lat = asyncio.run(one_run(n, 400, paced, Path(tmp) / f"l{n}-{r}.sqlite"))
                rates.append(rate)
                p50s.append(pct(lat, 0.50) * 1e3)
                p99s.append(pct(lat, 0.99) * 1e3)
            rate = statistics.median(rates)
            print(f"{n:>7} {bars:>5} {rate:>9.1f} {rate * n:>10.0f} "
                  f"{statistics.median(p50s):>11.2f} {statistics.median(p99s):>11.2f}", flush=True)


if __name__ == "__main__":
    main()
