"""The ccxt warm-up backfill, run for real against the replay exchange's REST API on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from bot.errors import FeedError
from bot.events import Candle
from bot.feeds.backfill import fetch_range, fetch_recent_candles, make_exchange, open_exchange
from bot.feeds.binance import validate_candle_fields
from bot.feeds.replay.csvdata import Series, load_ohlcv_csv
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market

H = 3_600_000
START_MS = 1_704_067_200_000
SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def assert_candles_match(candles: list[Candle], symbol: str, series: Series, first: int, stop: int) -> None:
    """The candles are rows ``first:stop`` of the series, to the exact string."""
    assert [c.open_ms for c in candles] == [int(t) for t in series.open_ms[first:stop]]
    for c, i in zip(candles, range(first, stop), strict=True):
        assert c.symbol == symbol and c.close_ms == c.open_ms + H - 1
        assert (str(c.open), str(c.high), str(c.low), str(c.close), str(c.volume)) == series.row(i)[1:]


def klines_queries(rx: ReplayExchange) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(p).query) for p in rx.rest_requests if p.startswith("/api/v3/klines")]


@pytest.mark.asyncio
async def test_markets_load_spot_only_from_the_local_server() -> None:
    data = generate_market(["BTC/USDT", "XRP/USDT"], 50, START_MS, seed=1)
    async with ReplayExchange(data) as rx, open_exchange(rx.rest_url) as ex:
        markets = await ex.load_markets()
        assert set(markets) == {"BTC/USDT", "XRP/USDT"}
        btc = markets["BTC/USDT"]
        assert btc["spot"] and btc["active"] and btc["id"] == "BTCUSDT" and not btc["swap"]
        assert Decimal(btc["precision"]["price"]) == Decimal("0.01")
        assert list(rx.rest_requests) == ["/api/v3/exchangeInfo"]
        assert all("127.0.0.1" in url for url in ex.urls["api"].values())


def test_without_a_url_the_exchange_is_binance() -> None:
    ex = make_exchange(None)
    assert ex.urls["api"]["public"] == "https://api.binance.com/api/v3"
    assert ex.options["fetchMarkets"]["types"] == ["spot"] and ex.enableRateLimit
    default = make_exchange("https://api.binance.com/api/v3/")
    assert default.urls["api"]["fapiPublic"] == "https://fapi.binance.com/fapi/v1"


@pytest.mark.asyncio
async def test_more_than_a_page_is_fetched_in_pages_exactly() -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], 2600, START_MS, seed=3)
    async with ReplayExchange(data, start_index=2500) as rx, make_exchange(rx.rest_url) as ex:
        candles = await fetch_recent_candles(ex, "ETH/USDT", "1h", 2100)
        assert_candles_match(candles, "ETH/USDT", data["ETH/USDT"], 400, 2500)
        pages = klines_queries(rx)
        assert len(pages) == 3 and all(int(q["limit"][0]) <= 1000 for q in pages)
        assert [int(q["startTime"][0]) for q in pages] == [START_MS + i * H for i in (400, 1400, 2400)]
        assert set(p.split("?")[0] for p in rx.rest_requests) == {
            "/api/v3/exchangeInfo", "/api/v3/time", "/api/v3/klines"}


@pytest.mark.asyncio
async def test_only_bars_closed_before_until_are_kept() -> None:
    data = generate_market(["BTC/USDT"], 300, START_MS, seed=4)
    series = data["BTC/USDT"]
    async with ReplayExchange(data, start_index=300) as rx, make_exchange(rx.rest_url) as ex:
        mid_bar = START_MS + 200 * H + 1234  # bar 200 is in progress
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 24, until_ms=mid_bar)
        assert_candles_match(candles, "BTC/USDT", series, 176, 200)
        at_close = START_MS + 200 * H  # bar 199 closed at this instant minus 1 ms
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 24, until_ms=at_close)
        assert_candles_match(candles, "BTC/USDT", series, 176, 200)
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 24, until_ms=at_close - 1)
        assert_candles_match(candles, "BTC/USDT", series, 175, 199)
        # More than the exchange has: everything there is.
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 5000)
        assert_candles_match(candles, "BTC/USDT", series, 0, 300)
        assert await fetch_recent_candles(ex, "BTC/USDT", "1h", 0) == []


@pytest.mark.asyncio
async def test_a_hole_in_the_history_gives_fewer_candles() -> None:
    full = generate_market(["BTC/USDT"], 3000, START_MS, seed=5)["BTC/USDT"]
    keep = [i for i in range(3000) if not 500 <= i < 1700]  # a hole longer than a page
    holed = Series(full.open_ms[keep], *(tuple(col[i] for i in keep)
                                         for col in (full.open, full.high, full.low, full.close, full.volume)))
    async with ReplayExchange({"BTC/USDT": holed}, start_index=len(holed)) as rx, \
            make_exchange(rx.rest_url) as ex:
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 2600)
    assert [c.open_ms for c in candles] == [int(full.open_ms[i]) for i in keep if i >= 400]


@pytest.mark.asyncio
async def test_the_server_clock_bounds_a_backfill_during_the_replay() -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], 120, START_MS, seed=6)
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=48, max_bars=30) as rx, \
            make_exchange(rx.rest_url) as ex:
        before = await fetch_recent_candles(ex, "BTC/USDT", "1h", 48)
        assert_candles_match(before, "BTC/USDT", data["BTC/USDT"], 0, 48)
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            async with asyncio.timeout(5):
                closed = 0
                while closed < 30:  # read everything: an unread client would stall its close handshake
                    closed += '"x":true' in await ws.recv()
            await asyncio.wait_for(rx.finished.wait(), 5)
        after = await fetch_recent_candles(ex, "BTC/USDT", "1h", 48)
        assert_candles_match(after, "BTC/USDT", data["BTC/USDT"], 30, 78)


@pytest.mark.asyncio
async def test_real_binance_rows_come_back_to_the_exact_string() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: real Binance data is only in the team workspace")
    series = load_ohlcv_csv(SHARED_DATA / "BTCUSDT-1h.csv.gz")
    i = int(np.searchsorted(series.open_ms, 1_546_300_800_000))
    part = series.slice(i, i + 1500)  # 2019: prices like '3713.0' must not come back as '3713.00'
    async with ReplayExchange({"BTC/USDT": part}, start_index=1500) as rx, make_exchange(rx.rest_url) as ex:
        candles = await fetch_recent_candles(ex, "BTC/USDT", "1h", 1200)
    expected_first = int(np.searchsorted(part.open_ms, candles[0].open_ms))
    assert expected_first <= 300  # real history has a few missing hours
    stop = expected_first + len(candles)
    assert [c.open_ms for c in candles] == [int(t) for t in part.open_ms[expected_first:stop]]
    assert_candles_match(candles, "BTC/USDT", part, expected_first, stop)


@pytest.mark.asyncio
async def test_float_numbers_are_converted_through_their_shortest_repr() -> None:
    data = generate_market(["XRP/USDT"], 30, START_MS, seed=7)
    async with ReplayExchange(data, start_index=30) as rx, make_exchange(rx.rest_url) as ex:
        ex.number = float  # ccxt's default, as an exchange built elsewhere would have
        candles = await fetch_recent_candles(ex, "XRP/USDT", "1h", 30)
    xrp = data["XRP/USDT"]
    assert [c.close for c in candles] == [Decimal(x) for x in xrp.close]
    assert all(c.high >= c.low for c in candles)


@pytest.mark.asyncio
async def test_ccxt_failures_become_feed_errors_naming_the_symbol() -> None:
    data = generate_market(["BTC/USDT"], 30, START_MS, seed=8)
    async with ReplayExchange(data, start_index=30) as rx, make_exchange(rx.rest_url) as ex:
        with pytest.raises(FeedError, match="DOGE/USDT.*BadSymbol"):
            await fetch_recent_candles(ex, "DOGE/USDT", "1h", 10)
        with pytest.raises(FeedError, match="BTC/USDT.*ExchangeError|BTC/USDT.*BadRequest"):
            await fetch_recent_candles(ex, "BTC/USDT", "4h", 10)  # the replay serves 1h only
        port = rx.port
    async with make_exchange(f"http://127.0.0.1:{port}/api/v3") as ex:
        sleeps: list[float] = []

        async def no_wait(s: float) -> None:
            sleeps.append(s)

        with pytest.raises(FeedError, match="BTC/USDT.*gave up after 5 attempts.*ExchangeNotAvailable"):
            await fetch_recent_candles(ex, "BTC/USDT", "1h", 10, sleep=no_wait)
        assert len(sleeps) == 4


# -- fetch_range: the engine's hole filler ---------------------------------------------------

async def no_sleep(seconds: float) -> None:
    pass


@pytest.mark.asyncio
async def test_fetch_range_returns_the_closed_bars_of_the_window_in_pages() -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], 2600, START_MS, seed=12)
    eth = data["ETH/USDT"]
    async with ReplayExchange(data, start_index=2600) as rx, make_exchange(rx.rest_url) as ex:
        candles, rejected = await fetch_range(ex, "ETH/USDT", "1h", START_MS + 100 * H, START_MS + 2299 * H)
        assert rejected == []
        assert_candles_match(candles, "ETH/USDT", eth, 100, 2300)
        assert [int(q["limit"][0]) for q in klines_queries(rx)] == [1000, 1000, 200]
        # An unaligned start rounds up to the next bar; bars not closed by now_ms are not asked for.
        candles, _ = await fetch_range(ex, "ETH/USDT", "1h", START_MS + 10 * H + 1, START_MS + 20 * H,
                                       now_ms=START_MS + 15 * H + 5)
        assert_candles_match(candles, "ETH/USDT", eth, 11, 15)
        assert await fetch_range(ex, "ETH/USDT", "1h", START_MS + 5 * H, START_MS + 4 * H) == ([], [])
        # Asking past the exchange's clock gives what has closed.
        candles, _ = await fetch_range(ex, "ETH/USDT", "1h", START_MS + 2590 * H, START_MS + 9999 * H)
        assert_candles_match(candles, "ETH/USDT", eth, 2590, 2600)


@pytest.mark.asyncio
async def test_fetch_range_rejects_bad_rows_with_reasons_and_keeps_the_good_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    data = generate_market(["BTC/USDT"], 30, START_MS, seed=13)
    btc = data["BTC/USDT"]

    def hostile(rows: list[list[Any]]) -> list[Any]:
        rows = [list(r) for r in rows]
        rows[1][2] = "NaN"                      # high
        rows[2][3] = str(10**20)                # low: absurd
        rows[3][5] = "-1"                       # volume
        rows[4][2], rows[4][3] = rows[4][3], rows[4][2]  # high < low
        rows[5][0] += 1                         # misaligned
        rows[6][6] += H                         # close time does not end the bar
        rows[7][1] = None                       # wrong type
        rows[8] = rows[8][:4]                   # too short
        early = START_MS - 24 * H
        return [*rows[::-1], rows[9], [early, *rows[10][1:6], early + H - 1], "junk", {"t": 1}]

    async with ReplayExchange(data, start_index=30) as rx, make_exchange(rx.rest_url) as ex:
        rx.faults.rest_hostile(hostile)
        with caplog.at_level(logging.WARNING, "bot.feeds.backfill"):
            candles, rejected = await fetch_range(ex, "BTC/USDT", "1h", START_MS, START_MS + 29 * H, sleep=no_sleep)
    kinds = sorted(r.split(":")[0] for r in rejected)
    assert kinds == sorted(["bad number", "bad number", "negative volume", "inconsistent prices",
                            "misaligned time", "misaligned time", "bad number", "bad row", "duplicate bar",
                            "outside range", "bad row", "bad row"])
    assert [c.open_ms for c in candles] == [START_MS + i * H for i in (0, *range(9, 30))]
    assert_candles_match(candles[1:], "BTC/USDT", btc, 9, 30)
    assert sum("REST kline rejected" in r.getMessage() for r in caplog.records) == len(rejected)


# -- REST fuzz: hostile kline rows never get through, never crash ---------------------------------

FUZZ_BARS = 40
json_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=25)
                | st.sampled_from(["1e400", "-0", "0", "NaN", "Infinity", "1_0", " 1", "0x10", "1e-30", ""]))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                                             max_size=2),
                           max_leaves=8)


@st.composite
def row_edits(draw: st.DrawFn) -> Callable[[list[list[Any]]], Any]:
    """A transform of the clean rows: fields replaced, rows dropped, doubled, shuffled, cut, junk added."""
    n_edits = draw(st.integers(0, 12))
    edits = [(draw(st.integers(0, FUZZ_BARS - 1)), draw(st.integers(0, 11)),
              draw(json_values | st.integers(START_MS - 100 * H, START_MS + 100 * H)
                   | st.sampled_from([START_MS + 7 * H, START_MS + 7 * H + H - 1]))) for _ in range(n_edits)]
    drops = draw(st.sets(st.integers(0, FUZZ_BARS - 1), max_size=5))
    doubles = draw(st.lists(st.integers(0, FUZZ_BARS - 1), max_size=4))
    cuts = draw(st.dictionaries(st.integers(0, FUZZ_BARS - 1), st.integers(0, 11), max_size=3))
    junk = draw(st.lists(json_values, max_size=3))
    order = draw(st.permutations(range(FUZZ_BARS + len(doubles))))
    whole = draw(st.sampled_from([None] * 9 + ["not a list"]))

    def transform(rows: list[list[Any]]) -> Any:
        if whole is not None:
            return {"code": 0, "msg": whole}
        rows = [list(r) for r in rows]
        for i, j, value in edits:
            if i < len(rows):
                rows[i][j] = value
        for i, length in cuts.items():
            if i < len(rows):
                rows[i] = rows[i][:length]
        rows += [list(rows[i]) for i in doubles if i < len(rows)]
        rows = [rows[i] for i in order if i < len(rows) and i not in drops]
        return rows + junk

    return transform


def test_hostile_rest_rows_yield_only_valid_candles() -> None:
    data = generate_market(["BTC/USDT"], FUZZ_BARS, START_MS, seed=14)
    now_ms = START_MS + FUZZ_BARS * H
    first, last = START_MS, START_MS + (FUZZ_BARS - 1) * H

    async def start() -> tuple[ReplayExchange, Any]:
        rx = ReplayExchange(data, start_index=FUZZ_BARS)
        await rx.start()
        ex = make_exchange(rx.rest_url)
        ex.enableRateLimit = False  # loopback: no need to pace 120 examples
        await ex.load_markets()
        return rx, ex

    async def stop(rx: ReplayExchange, ex: Any) -> None:
        await ex.close()
        await rx.stop()

    async def fetch(ex: Any) -> tuple[list[Candle], list[str]]:
        return await fetch_range(ex, "BTC/USDT", "1h", first, last, now_ms=now_ms, sleep=no_sleep)

    kinds: Counter[str] = Counter()
    with asyncio.Runner() as runner:
        rx, ex = runner.run(start())
        try:
            @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
            @given(row_edits())
            def check(transform: Callable[[list[list[Any]]], Any]) -> None:
                served: list[Any] = []

                def spy(rows: list[list[Any]]) -> Any:
                    body = transform(rows)
                    served.append(body)
                    return body

                rx.faults.rest_hostile(spy)
                asked_before = len(klines_queries(rx))
                try:
                    candles, rejected = runner.run(fetch(ex))
                except FeedError:  # the one exception allowed (e.g. a body ccxt reads as an error answer)
                    kinds["FeedError"] += 1
                    return
                assert rx.faults.rest_faults_pending == 0  # the hostile answer was given
                if len(klines_queries(rx)) == asked_before + 1:  # one answer, parsed: each row kept or rejected
                    assert isinstance(served[0], list) and len(candles) + len(rejected) == len(served[0])
                opens = [c.open_ms for c in candles]
                assert opens == sorted(set(opens))
                for c in candles:
                    assert first <= c.open_ms <= last and c.close_ms == c.open_ms + H - 1
                    assert validate_candle_fields(c.open_ms, c.close_ms, str(c.open), str(c.high), str(c.low),
                                                  str(c.close), str(c.volume), H, now_ms) is None
                    assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high and c.volume >= 0
                for reason in rejected:
                    kind = reason.split(":")[0]
                    assert kind in REST_REJECTION_KINDS and len(reason) > len(kind) + 2
                    kinds[kind] += 1

            check()
        finally:
            runner.run(stop(rx, ex))
    assert len(kinds) >= 5  # the fuzz reached many of the rules


REST_REJECTION_KINDS = {"bad row", "bad timestamp", "timestamp out of range", "misaligned time", "bad number",
                        "non-positive price", "negative volume", "inconsistent prices", "outside range",
                        "duplicate bar"}
