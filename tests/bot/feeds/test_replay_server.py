"""The replay exchange over real sockets: websocket kline streams (websockets client) and REST (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from hypothesis import example, given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from bot.errors import ConfigError
from bot.feeds.replay.csvdata import Row, Series, load_ohlcv_csv
from bot.feeds.replay.klines import closed_bar, partial_bar, rest_kline
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market

H = 3_600_000
START_MS = 1_704_067_200_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
REAL_SLICE_START_MS = 1_620_777_600_000  # 2021-05-12 00:00 UTC, gap-free for BTC, ETH, XRP
HISTORY = 40
BARS = 60
KLINE_KEYS = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"]


def synthetic_data() -> dict[str, Series]:
    return generate_market(SYMBOLS, BARS, START_MS, seed=5)


_real_cache: dict[str, Series] = {}


def real_data() -> dict[str, Series]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: real Binance data is only in the team workspace")
    if not _real_cache:
        for s in SYMBOLS:
            series = load_ohlcv_csv(SHARED_DATA / f"{s.replace('/', '')}-1h.csv.gz")
            i = int(np.searchsorted(series.open_ms, REAL_SLICE_START_MS))
            _real_cache[s] = series.slice(i, i + BARS)
    return dict(_real_cache)


@pytest.fixture(params=["synthetic", "real"])
def data(request: pytest.FixtureRequest) -> dict[str, Series]:
    return synthetic_data() if request.param == "synthetic" else real_data()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json()


async def read_until_closed(ws: ClientConnection, n_closed: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Messages up to and including the ``n_closed``-th closed kline."""
    out: list[dict[str, Any]] = []
    closed = 0
    async with asyncio.timeout(timeout):
        while closed < n_closed:
            msg = json.loads(await ws.recv())
            out.append(msg)
            k = msg.get("data", msg)["k"]
            closed += k["x"]
    return out


async def drain(ws: ClientConnection, wait_s: float = 0.1) -> list[dict[str, Any]]:
    """Every message that arrives until the socket has been quiet for ``wait_s``."""
    out = []
    while True:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), wait_s)))
        except TimeoutError:
            return out


async def assert_silent(ws: ClientConnection, wait_s: float = 0.1) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), wait_s)


def check_kline_events(events: list[dict[str, Any]], data: dict[str, Series], symbols: list[str],
                       first: int, updates: int) -> None:
    """Binance shape, monotone event time, partial-then-closed order and exact closed strings."""
    last_e = 0
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        assert list(ev) == ["stream", "data"]
        d = ev["data"]
        assert list(d) == ["e", "E", "s", "k"] and d["e"] == "kline"
        k = d["k"]
        assert list(k) == KLINE_KEYS
        assert ev["stream"] == f"{k['s'].lower()}@kline_1h" and d["s"] == k["s"]
        assert k["i"] == "1h" and k["T"] == k["t"] + H - 1 and k["B"] == "0"
        assert all(isinstance(k[f], str) for f in "ochlvqVQ")
        assert all(isinstance(k[f], int) for f in "tTfLn") and isinstance(k["x"], bool)
        assert d["E"] >= last_e
        last_e = d["E"]
        assert k["t"] < d["E"] <= k["T"] + 1
        groups[(k["s"], k["t"])].append(k)
    ids = {s.replace("/", ""): s for s in symbols}
    assert {s for s, _ in groups} == set(ids)
    for sym_id, sym in ids.items():
        series = data[sym]
        opens = sorted(t for s, t in groups if s == sym_id)
        assert opens == [int(t) for t in series.open_ms[first:]]
        for t in opens:
            ks = groups[(sym_id, t)]
            assert [k["x"] for k in ks] == [False] * updates + [True]
            final = ks[-1]
            row = series.row(int(np.searchsorted(series.open_ms, t)))
            assert (final["o"], final["h"], final["l"], final["c"], final["v"]) == row[1:]
            fo, fh, fl, fv = (Decimal(final[f]) for f in "ohlv")
            prev_v, prev_h, prev_l = Decimal(0), fo, fo
            for k in ks:
                o, h, lo, c, v = (Decimal(k[f]) for f in "ohlcv")
                assert o == fo and fl <= lo <= min(o, c) <= max(o, c) <= h <= fh
                assert prev_v <= v <= fv and h >= prev_h and lo <= prev_l
                prev_v, prev_h, prev_l = v, h, lo


# -- websocket ---------------------------------------------------------------------

@pytest.mark.asyncio
async def test_combined_stream_replays_only_the_subscribed_symbols_exactly(data: dict[str, Series]) -> None:
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=HISTORY) as rx:
        url = f"{rx.ws_url}?streams=btcusdt@kline_1h/xrpusdt@kline_1h"
        async with connect(url) as ws:
            events = await read_until_closed(ws, 2 * (BARS - HISTORY))
            await asyncio.wait_for(rx.finished.wait(), 5)
            await assert_silent(ws)
        check_kline_events(events, data, ["BTC/USDT", "XRP/USDT"], HISTORY, updates=3)
        assert rx.bars_sent == BARS - HISTORY


@pytest.mark.asyncio
async def test_updates_per_bar_and_a_replay_from_the_first_bar() -> None:
    data = synthetic_data()
    async with ReplayExchange(data, bar_interval_s=0.0, updates_per_bar=1) as rx:
        async with connect(f"{rx.ws_url}?streams=ethusdt@kline_1h") as ws:
            events = await read_until_closed(ws, BARS)
    check_kline_events(events, data, ["ETH/USDT"], 0, updates=1)


@pytest.mark.asyncio
async def test_raw_stream_sends_bare_kline_events() -> None:
    data = synthetic_data()
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=HISTORY, updates_per_bar=0) as rx:
        async with connect(f"ws://127.0.0.1:{rx.port}/ws/ethusdt@kline_1h") as ws:
            events = await read_until_closed(ws, BARS - HISTORY)
    assert all(list(e) == ["e", "E", "s", "k"] and e["s"] == "ETHUSDT" and e["k"]["x"] for e in events)
    assert [e["k"]["c"] for e in events] == list(data["ETH/USDT"].close[HISTORY:])


@pytest.mark.asyncio
async def test_unknown_streams_get_nothing_and_clients_share_one_broadcast() -> None:
    data = synthetic_data()
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=HISTORY) as rx:
        async with connect(f"{rx.ws_url}?streams=dogeusdt@kline_1h/btcusdt@kline_4h") as stranger, \
                connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as a, \
                connect(f"{rx.ws_url}?streams=btcusdt@kline_1h/nonsense") as b:
            await asyncio.wait_for(rx.finished.wait(), 5)
            got_a, got_b = await drain(a), await drain(b)
            await assert_silent(stranger)
    # The stranger connected first and started the clock, so a and b joined a running broadcast.
    assert got_b and got_a[-len(got_b):] == got_b
    assert {e["stream"] for e in got_a} == {"btcusdt@kline_1h"}
    assert got_a[-1]["data"]["k"]["t"] == START_MS + (BARS - 1) * H and got_a[-1]["data"]["k"]["x"]


@pytest.mark.asyncio
async def test_subscribe_requests_are_answered_as_binance_does() -> None:
    data = synthetic_data()
    async with ReplayExchange(data, bar_interval_s=0.01, start_index=HISTORY) as rx:
        async with connect(f"ws://127.0.0.1:{rx.port}/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["xrpusdt@kline_1h"], "id": 1}))
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            await ws.send("not json")
            replies: list[dict[str, Any]] = []
            events = []
            async with asyncio.timeout(5):
                while len(replies) < 3 or not events:
                    msg = json.loads(await ws.recv())
                    (events if msg.get("e") == "kline" else replies).append(msg)
            assert replies[0] == {"result": None, "id": 1}
            assert replies[1] == {"result": ["xrpusdt@kline_1h"], "id": 2}
            assert replies[2]["error"]["code"] == 2
            assert {e["s"] for e in events} == {"XRPUSDT"}
            await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["xrpusdt@kline_1h"], "id": 3}))
            async with asyncio.timeout(5):
                while json.loads(await ws.recv()) != {"result": None, "id": 3}:
                    pass
            await assert_silent(ws, 0.05)


@pytest.mark.asyncio
async def test_the_clock_starts_with_the_first_client(http: aiohttp.ClientSession) -> None:
    data = synthetic_data()
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=HISTORY, max_bars=5) as rx:
        await asyncio.sleep(0.1)
        assert rx.bars_sent == 0 and not rx.finished.is_set()
        assert await get(http, f"{rx.rest_url}/time") == (200, {"serverTime": START_MS + HISTORY * H})
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            events = await read_until_closed(ws, 5)
            await asyncio.wait_for(rx.finished.wait(), 5)
            await assert_silent(ws)
        assert rx.bars_sent == 5
        assert events[-1]["data"]["k"]["t"] == START_MS + (HISTORY + 4) * H
        # Finished but still serving, like an exchange with no new trades.
        status, body = await get(http, f"{rx.rest_url}/time")
        assert status == 200 and body["serverTime"] == START_MS + (HISTORY + 5) * H
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as late:
            await assert_silent(late)


@pytest.mark.asyncio
async def test_a_slow_reader_misses_nothing() -> None:
    data = generate_market(["BTC/USDT"], 400, START_MS, seed=1)
    async with ReplayExchange(data, bar_interval_s=0.0) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h", max_queue=2) as ws:
            await asyncio.sleep(0.2)  # let the server's writes back up against our full queue
            events = await read_until_closed(ws, 400)
    assert [e["data"]["k"]["t"] for e in events if e["data"]["k"]["x"]] == [int(t) for t in data["BTC/USDT"].open_ms]


@pytest.mark.asyncio
async def test_stop_frees_the_port_and_is_idempotent() -> None:
    rx = ReplayExchange(synthetic_data(), bar_interval_s=0.0)
    await rx.start()
    port = rx.port
    async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
        await ws.recv()
        await rx.stop()
        await rx.stop()
        async with asyncio.timeout(5):
            with pytest.raises(Exception):  # noqa: B017, PT011 - ConnectionClosed of either kind
                while True:
                    await ws.recv()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        s.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        async with connect(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@kline_1h", open_timeout=2):
            pass
    async with ReplayExchange(synthetic_data(), port=port) as again:
        assert again.port == port


def test_bad_construction_is_refused() -> None:
    data = synthetic_data()
    with pytest.raises(ConfigError, match="timeframe"):
        ReplayExchange(data, timeframe="2d")
    with pytest.raises(ConfigError, match="start_index"):
        ReplayExchange(data, start_index=BARS + 1)
    with pytest.raises(ConfigError, match="BASE/QUOTE"):
        ReplayExchange({"BTCUSDT": data["BTC/USDT"]})
    with pytest.raises(ConfigError):
        ReplayExchange({})


# -- REST --------------------------------------------------------------------------

def expected_klines(series: Series, visible: int, start: int | None = None, end: int | None = None,
                    limit: int = 500) -> list[int]:
    """Binance's selection rule, written out plainly: open times of the bars served."""
    opens = [int(t) for t in series.open_ms[:visible]]
    if end is not None:
        opens = [t for t in opens if t <= end]
    if start is not None:
        return [t for t in opens if t >= start][:limit]
    return opens[-limit:]


@pytest.mark.asyncio
async def test_rest_ping_time_exchange_info_and_headers(http: aiohttp.ClientSession) -> None:
    data = synthetic_data()
    async with ReplayExchange(data, start_index=HISTORY) as rx:
        assert rx.rest_url == f"http://127.0.0.1:{rx.port}/api/v3"
        async with http.get(f"{rx.rest_url}/ping") as r:
            assert r.status == 200 and await r.json() == {}
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.headers["Connection"] == "close" and r.headers["Content-Length"] == "2"
        status, info = await get(http, f"{rx.rest_url}/exchangeInfo")
        assert status == 200 and info["timezone"] == "UTC"
        by_id = {s["symbol"]: s for s in info["symbols"]}
        assert set(by_id) == {"BTCUSDT", "ETHUSDT", "XRPUSDT"}
        btc = by_id["BTCUSDT"]
        assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
        assert btc["permissionSets"] == [["SPOT"]] and btc["isSpotTradingAllowed"] is True
        filters = {f["filterType"]: f for f in btc["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
        assert {"LOT_SIZE", "NOTIONAL"} <= set(filters)
        status, one = await get(http, f'{rx.rest_url}/exchangeInfo?symbols=["XRPUSDT"]')
        assert status == 200 and [s["symbol"] for s in one["symbols"]] == ["XRPUSDT"]
        assert filters != {f["filterType"]: f for f in one["symbols"][0]["filters"]}


@pytest.mark.asyncio
async def test_rest_klines_serve_history_then_the_streamed_bars(http: aiohttp.ClientSession,
                                                                data: dict[str, Series]) -> None:
    async with ReplayExchange(data, bar_interval_s=0.0, start_index=HISTORY) as rx:
        url = f"{rx.rest_url}/klines?symbol=ETHUSDT&interval=1h"
        status, before = await get(http, url)
        assert status == 200
        eth = data["ETH/USDT"]
        assert before == [rest_kline(eth.row(i), H) for i in range(HISTORY)]
        assert before[0][:7] == [int(eth.open_ms[0]), *eth.row(0)[1:], int(eth.open_ms[0]) + H - 1]
        assert isinstance(before[0][8], int) and before[0][11] == "0"
        async with connect(f"{rx.ws_url}?streams=ethusdt@kline_1h") as ws:
            await read_until_closed(ws, BARS - HISTORY)
        await asyncio.wait_for(rx.finished.wait(), 5)
        status, after = await get(http, url)
        assert [k[0] for k in after] == [int(t) for t in eth.open_ms]
        assert [tuple(k[1:6]) for k in after] == [r[1:] for r in eth.rows()]


@pytest.mark.asyncio
async def test_rest_klines_are_closed_bars_only_while_the_replay_runs(http: aiohttp.ClientSession) -> None:
    data = generate_market(["BTC/USDT"], 200, START_MS, seed=2)
    async with ReplayExchange(data, bar_interval_s=0.002, start_index=50) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            seen = 0
            while not rx.finished.is_set():
                t0 = (await get(http, f"{rx.rest_url}/time"))[1]["serverTime"]
                status, klines = await get(http, f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h&limit=3")
                t1 = (await get(http, f"{rx.rest_url}/time"))[1]["serverTime"]
                assert status == 200
                # Every bar served had closed by then, and none closed long before is missing.
                assert klines[-1][6] < t1 and klines[-1][0] >= t0 - 2 * H
                seen += 1
                while True:  # keep the socket drained
                    try:
                        await asyncio.wait_for(ws.recv(), 0.001)
                    except TimeoutError:
                        break
    assert seen > 3


@pytest.mark.asyncio
async def test_rest_klines_windows_and_limits_as_binance(http: aiohttp.ClientSession) -> None:
    data = generate_market(["BTC/USDT", "ETH/USDT"], 2600, START_MS, seed=4)
    btc = data["BTC/USDT"]
    visible = 2500
    async with ReplayExchange(data, start_index=visible) as rx:
        base = f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h"
        t = [int(x) for x in btc.open_ms]
        cases: list[tuple[str, dict[str, int]]] = [
            ("", {}),
            ("&limit=7", {"limit": 7}),
            ("&limit=5000", {"limit": 1000}),
            (f"&startTime={t[10]}", {"start": t[10]}),
            (f"&startTime={t[10] + 1}&limit=3", {"start": t[10] + 1, "limit": 3}),
            (f"&startTime={t[100]}&endTime={t[104]}", {"start": t[100], "end": t[104]}),
            (f"&startTime={t[100]}&endTime={t[104] - 1}&limit=1000", {"start": t[100], "end": t[104] - 1,
                                                                      "limit": 1000}),
            (f"&endTime={t[1200]}&limit=1000", {"end": t[1200], "limit": 1000}),
            (f"&endTime={t[3]}", {"end": t[3]}),
            (f"&startTime={t[2550]}", {"start": t[2550]}),  # not closed yet on the replay clock
            ("&startTime=0&endTime=0", {"start": 0, "end": 0}),
        ]
        for query, kw in cases:
            status, body = await get(http, base + query)
            assert status == 200, query
            assert [k[0] for k in body] == expected_klines(btc, visible, **kw), query


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/v3/klines?interval=1h", 400, -1102),
    ("/api/v3/klines?symbol=FOOUSDT&interval=1h", 400, -1121),
    ("/api/v3/klines?symbol=btcusdt&interval=1h", 400, -1121),
    ("/api/v3/klines?symbol=BTCUSDT", 400, -1102),
    ("/api/v3/klines?symbol=BTCUSDT&interval=4h", 400, -1120),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=abc", 400, -1100),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=-5", 400, -1100),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=0", 400, -1130),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=x", 400, -1100),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime=2&endTime=1", 400, -1023),
    ("/api/v3/klines?symbol=BTCUSDT&interval=1h&foo=1", 400, -1104),
    ("/api/v3/klines?symbol=BTCUSDT&symbol=ETHUSDT&interval=1h", 400, -1101),
    ("/api/v3/exchangeInfo?symbol=FOOUSDT", 400, -1121),
    ("/api/v3/exchangeInfo?symbols=BTCUSDT", 400, -1100),
    ("/api/v3/ticker/price", 404, -1),
    ("/favicon.ico", 404, -1),
])
@pytest.mark.asyncio
async def test_rest_errors_are_binance_errors(http: aiohttp.ClientSession, path: str, status: int,
                                              code: int) -> None:
    async with ReplayExchange(synthetic_data(), start_index=HISTORY) as rx:
        got_status, body = await get(http, f"http://127.0.0.1:{rx.port}{path}")
    assert got_status == status
    assert body["code"] == code and isinstance(body["msg"], str)


@pytest.mark.asyncio
async def test_plain_http_on_the_stream_path_is_told_to_upgrade(http: aiohttp.ClientSession) -> None:
    async with ReplayExchange(synthetic_data()) as rx:
        async with http.get(f"{rx.ws_url.replace('ws://', 'http://')}?streams=btcusdt@kline_1h") as r:
            assert r.status == 426
            await r.read()
        assert rx.bars_sent == 0


# -- intra-bar updates, as a property --------------------------------------------------

@st.composite
def ohlcv_rows(draw: st.DrawFn) -> Row:
    places = draw(st.integers(0, 8))
    o, c = draw(st.integers(1, 10**9)), draw(st.integers(1, 10**9))
    hi = max(o, c) + draw(st.integers(0, 10**6))
    lo = max(1, min(o, c) - draw(st.integers(0, 10**6)))
    vol = draw(st.integers(0, 10**12))
    v_places = draw(st.integers(0, 8))

    def fmt(n: int, p: int) -> str:
        return str(n) if p == 0 else f"{n // 10**p}.{n % 10**p:0{p}d}"

    return (0, fmt(o, places), fmt(hi, places), fmt(lo, places), fmt(c, places), fmt(vol, v_places))


@given(ohlcv_rows(), st.integers(1, 6))
# A quote volume of 2.0e20 to 1e-8 needs 29 digits, one more than decimal's default context holds.
@example(row=(0, "1", "281038822", "1", "281038822", "711645451206"), updates=1)
def test_partial_bars_stay_inside_the_final_bar_and_grow(row: Row, updates: int) -> None:
    final = closed_bar(row)
    assert (final.open, final.high, final.low, final.close, final.volume) == row[1:]
    fh, fl, fv, fq = Decimal(final.high), Decimal(final.low), Decimal(final.volume), Decimal(final.quote_volume)
    prev = None
    for k in range(1, updates + 1):
        p = partial_bar(row, k, updates)
        assert all("E" not in x and "e" not in x for x in (p.high, p.low, p.close, p.volume, p.quote_volume))
        o, h, lo, c, v = (Decimal(x) for x in (p.open, p.high, p.low, p.close, p.volume))
        assert p.open == row[1] and fl <= lo <= min(o, c) <= max(o, c) <= h <= fh
        assert 0 <= v <= fv and Decimal(p.quote_volume) <= fq and 0 <= p.trades <= final.trades
        assert Decimal(p.taker_base) <= v
        if prev is not None:
            assert h >= prev[0] and lo <= prev[1] and v >= prev[2]
        prev = (h, lo, v)
