"""`bot download`, run for real: ccxt against the replay exchange on loopback, files checked byte for byte."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from bot.cli import main
from bot.data.download import DownloadRequest, SymbolResult, download, open_download_exchange
from bot.data.pages import Gap, parse_when
from bot.errors import ConfigError, DataError
from bot.feeds.replay.csvdata import Series, load_ohlcv_csv, write_ohlcv_csv
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.retry import RetryPolicy

H = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
N_BARS = 2600  # three pages of at most 1000
FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
SOURCE = generate_market(["BTC/USDT", "ETH/USDT"], N_BARS, START_MS, seed=3)


def csv_bytes(series: Series) -> bytes:
    """The source rows as write_ohlcv_csv writes them: what a download must reproduce, byte for byte."""
    lines = ["open_time,open,high,low,close,volume"] + [",".join(map(str, r)) for r in series.rows()]
    return ("\n".join(lines) + "\n").encode("ascii")


def klines_queries(rx: ReplayExchange) -> list[dict[str, int]]:
    return [{k: int(v[0]) for k, v in parse_qs(urlsplit(p).query).items() if k != "symbol" and k != "interval"}
            for p in rx.rest_requests if p.startswith("/api/v3/klines")]


@asynccontextmanager
async def served(data: dict[str, Series], history: int | None = None) -> AsyncIterator[ReplayExchange]:
    """The replay exchange serving ``data`` over REST: every bar closed, or the first ``history`` bar times."""
    n = len(np.unique(np.concatenate([s.open_ms for s in data.values()])))
    async with ReplayExchange(data, start_index=n if history is None else history) as rx:
        yield rx


async def fetch(rx: ReplayExchange, out: Path, symbols: tuple[str, ...] = ("BTC/USDT",), since: int = START_MS,
                until: int | None = None, gz: bool = False, **kw: Any) -> list[SymbolResult]:
    request = DownloadRequest(symbols, "1h", since, until, out, gz)
    async with open_download_exchange("binance", rx.rest_url) as ex:
        return await download(ex, request, policy=FAST, **kw)


def target(out: Path, name: str = "BTCUSDT-1h.csv") -> Path:
    return out / name


# ---------------------------------------------------------------------------
# Pagination, exact strings, the file format
# ---------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_pages_reproduce_the_source_byte_for_byte(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        results = await fetch(rx, tmp_path, ("BTC/USDT", "ETH/USDT"))
        pages = klines_queries(rx)
    for sym, name in (("BTC/USDT", "BTCUSDT-1h.csv"), ("ETH/USDT", "ETHUSDT-1h.csv")):
        assert target(tmp_path, name).read_bytes() == csv_bytes(SOURCE[sym])
        assert load_ohlcv_csv(target(tmp_path, name)).open == SOURCE[sym].open
    assert [r.rows for r in results] == [N_BARS, N_BARS] and all(r.gaps == [] for r in results)
    assert len(pages) == 6 and all(q["limit"] <= 1000 for q in pages)
    assert [q["startTime"] for q in pages[:3]] == [START_MS + i * H for i in (0, 1000, 2000)]
    assert all(q["endTime"] == START_MS + (N_BARS - 1) * H for q in pages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BTCUSDT-1h.csv", "ETHUSDT-1h.csv"]  # no leftovers


@pytest.mark.asyncio
async def test_gzip_output_holds_the_same_rows(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        await fetch(rx, tmp_path, gz=True)
    path = target(tmp_path, "BTCUSDT-1h.csv.gz")
    assert gzip.decompress(path.read_bytes()) == csv_bytes(SOURCE["BTC/USDT"])


@pytest.mark.asyncio
async def test_the_fetch_ohlcv_path_of_other_exchanges_gives_the_same_file(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        await fetch(rx, tmp_path, raw=False)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])


@pytest.mark.asyncio
async def test_gaps_the_exchange_has_are_kept_and_reported(tmp_path: Path) -> None:
    src = SOURCE["BTC/USDT"]
    keep = np.ones(N_BARS, dtype=bool)
    keep[100:150] = False  # inside the first page
    keep[990:1010] = False  # across the first page boundary
    holey = Series.from_rows(r for r, k in zip(src.rows(), keep, strict=True) if k)
    async with served({"BTC/USDT": holey}) as rx:
        (result,) = await fetch(rx, tmp_path)
    assert target(tmp_path).read_bytes() == csv_bytes(holey)
    assert result.gaps == [Gap(START_MS + 100 * H, START_MS + 149 * H, H), Gap(START_MS + 990 * H, START_MS + 1009 * H, H)]
    assert [g.bars for g in result.gaps] == [50, 20]


@pytest.mark.asyncio
async def test_until_in_the_future_stops_at_the_last_closed_bar(tmp_path: Path) -> None:
    # 2000 bars closed on the exchange's clock; every page also carries the bar still forming.
    async with served(SOURCE, history=2000) as rx:
        forming = [rx.now_ms, "1.0", "2.0", "0.5", "1.5", "10.0", rx.now_ms + H - 1]
        rx.faults.rest_hostile(lambda rows: rows + [forming], n=10)
        (result,) = await fetch(rx, tmp_path, until=parse_when("2100-01-01", "--until"))
        pages = klines_queries(rx)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"].slice(0, 2000))
    assert result.last_ms == result.wanted_last_ms == START_MS + 1999 * H
    assert all(q["endTime"] == START_MS + 1999 * H for q in pages)


@pytest.mark.asyncio
async def test_until_is_exclusive(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        (result,) = await fetch(rx, tmp_path, since=START_MS + 10 * H + 1, until=START_MS + 1234 * H)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"].slice(11, 1234))
    assert result.rows == 1223


# ---------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_an_existing_file_is_continued_from_its_last_bar(tmp_path: Path) -> None:
    write_ohlcv_csv(target(tmp_path), SOURCE["BTC/USDT"].slice(0, 1500))
    async with served(SOURCE) as rx:
        (result,) = await fetch(rx, tmp_path)
        pages = klines_queries(rx)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])
    assert pages[0]["startTime"] == START_MS + 1500 * H and len(pages) == 2
    assert (result.new_rows, result.resumed_after_ms) == (1100, START_MS + 1499 * H)


@pytest.mark.asyncio
async def test_an_up_to_date_file_is_not_rewritten(tmp_path: Path) -> None:
    write_ohlcv_csv(target(tmp_path), SOURCE["BTC/USDT"])
    before = target(tmp_path).stat()
    async with served(SOURCE) as rx:
        (result,) = await fetch(rx, tmp_path)
        assert klines_queries(rx) == []
    assert result.new_rows == 0 and target(tmp_path).stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.asyncio
async def test_a_corrupt_existing_file_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = target(tmp_path)
    write_ohlcv_csv(path, SOURCE["BTC/USDT"].slice(0, 10))
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",", ",x", 1)  # line 5: open is not a number
    path.write_text("".join(lines))
    before = path.read_bytes()
    async with served(SOURCE) as rx:
        with pytest.raises(DataError, match=re.escape(str(path)) + r": line 5: open 'x"):
            await fetch(rx, tmp_path)
        assert klines_queries(rx) == []
    assert path.read_bytes() == before


@pytest.mark.asyncio
async def test_a_cancelled_gzip_download_is_finished_by_a_rerun(tmp_path: Path) -> None:
    """Cancelled while page 3 is in flight (as Ctrl-C cancels asyncio.run's task): the .csv.gz holds two pages."""
    path = target(tmp_path, "BTCUSDT-1h.csv.gz")
    async with served(SOURCE) as rx:
        task = asyncio.ensure_future(fetch(rx, tmp_path, gz=True))
        rx.faults.rest_hostile(lambda rows: rows, n=2)
        rx.faults.rest_hostile(lambda rows: task.cancel() and rows, n=1)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gzip.decompress(path.read_bytes()) == csv_bytes(SOURCE["BTC/USDT"].slice(0, 2000))
        await fetch(rx, tmp_path, gz=True)
    assert gzip.decompress(path.read_bytes()) == csv_bytes(SOURCE["BTC/USDT"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BTCUSDT-1h.csv.gz"]


async def run_cli_killed(rx: ReplayExchange, out: Path, sig: int, after_pages: int) -> int:
    """`bot download` as a process, sent ``sig`` when it asks for page ``after_pages + 1``."""
    proc: asyncio.subprocess.Process | None = None
    served_pages = 0

    def kill_on_page(rows: Any) -> Any:
        nonlocal served_pages
        served_pages += 1
        if served_pages == after_pages + 1:
            assert proc is not None
            os.kill(proc.pid, sig)
        return rows

    rx.faults.rest_hostile(kill_on_page, n=after_pages + 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "download", "--symbols", "BTC/USDT", "--since", str(START_MS),
        "--out", str(out), "--rest-url", rx.rest_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert served_pages == after_pages + 1, err.decode()
    return proc.returncode if proc.returncode is not None else -999


@pytest.mark.slow
@pytest.mark.asyncio
async def test_kill_9_mid_download_then_a_rerun_finishes_the_file_exactly(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        rc = await run_cli_killed(rx, tmp_path, signal.SIGKILL, after_pages=2)
        assert rc == -signal.SIGKILL
        # Nothing half-written in place: the two fsynced pages wait in the journal.
        assert not target(tmp_path).exists()
        journal = tmp_path / "BTCUSDT-1h.partial"
        assert journal.read_bytes() == csv_bytes(SOURCE["BTC/USDT"].slice(0, 2000))
        rx.rest_requests.clear()
        (result,) = await fetch(rx, tmp_path)
        pages = klines_queries(rx)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])
    assert pages[0]["startTime"] == START_MS + 2000 * H and len(pages) == 1  # resumed, not restarted
    assert result.new_rows == 600 and not journal.exists()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_ctrl_c_leaves_a_valid_file_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        rc = await run_cli_killed(rx, tmp_path, signal.SIGINT, after_pages=2)
        assert rc == 130
        assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"].slice(0, 2000))
        assert len(load_ohlcv_csv(target(tmp_path))) == 2000
        assert sorted(p.name for p in tmp_path.iterdir()) == ["BTCUSDT-1h.csv"]
        await fetch(rx, tmp_path)
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])


# ---------------------------------------------------------------------------
# Rate limits, errors, bad pages
# ---------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_a_429_waits_at_least_retry_after(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        request = DownloadRequest(("BTC/USDT",), "1h", START_MS, None, tmp_path)
        async with open_download_exchange("binance", rx.rest_url) as ex:
            await ex.load_markets()
            assert ex.enableRateLimit
            rx.faults.fail_next_rest("429", retry_after=1)  # the next request: the first klines page
            t0 = time.monotonic()
            await download(ex, request, policy=FAST, now_ms=rx.now_ms)
            elapsed = time.monotonic() - t0
        assert rx.faults.rest_faults_served == {"429": 1}
    assert elapsed >= 1.0
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])


@pytest.mark.asyncio
async def test_network_errors_are_retried(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        rx.faults.fail_next_rest("503", n=2)
        await fetch(rx, tmp_path)
        assert rx.faults.rest_faults_served == {"503": 2}
    assert target(tmp_path).read_bytes() == csv_bytes(SOURCE["BTC/USDT"])


@pytest.mark.asyncio
async def test_an_unknown_symbol_is_a_clear_error_before_any_download(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        with pytest.raises(ConfigError, match="'DOGE/USDT' is not a market of binance"):
            await fetch(rx, tmp_path, ("BTC/USDT", "DOGE/USDT"))
        assert klines_queries(rx) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.asyncio
async def test_bad_symbol_from_the_klines_endpoint_is_not_retried(tmp_path: Path) -> None:
    async with served(SOURCE) as rx:
        request = DownloadRequest(("BTC/USDT",), "1h", START_MS, None, tmp_path)
        async with open_download_exchange("binance", rx.rest_url) as ex:
            await ex.load_markets()
            rx.faults.fail_next_rest("bad_symbol", n=3)
            with pytest.raises(ConfigError, match="BTC/USDT is refused by binance.*Invalid symbol"):
                await download(ex, request, policy=FAST, now_ms=rx.now_ms)
        assert rx.faults.rest_faults_served == {"bad_symbol": 1}


@pytest.mark.asyncio
async def test_an_overlapping_page_is_deduplicated(tmp_path: Path) -> None:
    src = SOURCE["BTC/USDT"]
    repeat = [[int(src.open_ms[i]), *src.row(i)[1:]] for i in range(995, 1000)]
    async with served(SOURCE) as rx:
        rx.faults.rest_hostile(lambda rows: rows, n=1)
        rx.faults.rest_hostile(lambda rows: repeat + rows, n=1)  # page 2 starts with the end of page 1
        (result,) = await fetch(rx, tmp_path)
    assert target(tmp_path).read_bytes() == csv_bytes(src) and result.overlap == 5


@pytest.mark.parametrize("damage", ["swap", "duplicate", "conflicting_repeat", "misaligned"])
@pytest.mark.asyncio
async def test_an_invalid_page_is_refused_and_the_earlier_pages_kept(tmp_path: Path, damage: str) -> None:
    src = SOURCE["BTC/USDT"]

    def hurt(rows: list[list[Any]]) -> list[list[Any]]:
        if damage == "swap":
            rows[3], rows[4] = rows[4], rows[3]
        elif damage == "duplicate":
            rows.insert(4, rows[3])
        elif damage == "conflicting_repeat":
            rows.insert(0, [int(src.open_ms[999]), "1.0", "2.0", "0.5", "1.5", "3.0"])
        else:
            rows[3][0] += 1
        return rows

    async with served(SOURCE) as rx:
        rx.faults.rest_hostile(lambda rows: rows, n=1)
        rx.faults.rest_hostile(hurt, n=1)
        with pytest.raises(DataError, match="BTC/USDT 1h page from 2024-02-11 16:00 UTC"):
            await fetch(rx, tmp_path)
    assert target(tmp_path).read_bytes() == csv_bytes(src.slice(0, 1000))


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--since", "yesterday"],
    ["--since", "2024-02-01", "--until", "2024-01-01"],
    ["--since", "2024-01-01", "--exchange", "no_such_exchange"],
])
def test_bad_arguments_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "--symbols", "BTC/USDT", "--out", str(tmp_path), "--rest-url",
                 "http://127.0.0.1:9/api/v3", "--timeout", "1", *argv]) == 2
    assert "configuration error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.asyncio
async def test_the_file_serves_through_bot_replay_server(tmp_path: Path) -> None:
    """Downloaded, served by `bot replay-server --data`, downloaded again through the CLI: the same file."""
    src_dir, copy_dir = tmp_path / "a", tmp_path / "b"
    async with served(SOURCE) as rx:
        await fetch(rx, src_dir, gz=True)
    path = src_dir / "BTCUSDT-1h.csv.gz"
    assert len(load_ohlcv_csv(path)) == N_BARS
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "replay-server", "--data", str(path), "--port", "0",
        "--history", str(N_BARS), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        rest_url = None
        while rest_url is None:
            line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
            assert line, "replay-server exited"
            m = re.search(r'rest_url = "([^"]+)"', line)
            rest_url = m.group(1) if m else None
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "download", "--symbols", "BTCUSDT", "--since", "2024-01-01",
            "--out", str(copy_dir), "--rest-url", rest_url, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        assert f"BTC/USDT: {copy_dir / 'BTCUSDT-1h.csv'} holds {N_BARS} bars" in out.decode()
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 30)
    assert (copy_dir / "BTCUSDT-1h.csv").read_bytes() == gzip.decompress(path.read_bytes())


@pytest.mark.slow
@pytest.mark.asyncio
async def test_cli_exit_codes_for_a_bad_symbol_and_a_corrupt_file(tmp_path: Path) -> None:
    path = target(tmp_path)
    path.write_text("open_time,open,high,low,close,volume\n1704067200000,1,1,1,1\n")
    async with served(SOURCE) as rx:
        for symbols, code, message in ((["XYZ/USDT"], 2, "'XYZ/USDT' is not a market"),
                                       (["BTC/USDT"], 3, f"{path}: line 2: expected 6 fields")):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "download", "--symbols", *symbols, "--since", "2024-01-01",
                "--out", str(tmp_path), "--rest-url", rx.rest_url, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == code and message in err.decode()
