"""The replay exchange's fault injection, seen by plain websocket and HTTP clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from bot.errors import ConfigError
from bot.feeds.replay.faults import Faults
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.streams import Connections, _Event
from bot.feeds.replay.synthetic import generate_market

H = 3_600_000
START_MS = 1_704_067_200_000
SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
ALL_STREAMS = "btcusdt@kline_1h/ethusdt@kline_1h/xrpusdt@kline_1h"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def replay(bars: int = 40, **kw: Any) -> ReplayExchange:
    opts: dict[str, Any] = {"bar_interval_s": 0.0, "updates_per_bar": 0}
    opts.update(kw)
    return ReplayExchange(generate_market(SYMBOLS, bars, START_MS, seed=31), **opts)


async def closed_klines(ws: ClientConnection, n: int, timeout: float = 5.0) -> list[tuple[str, int]]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            k = json.loads(await ws.recv())["data"]["k"]
            if k["x"]:
                out.append((k["s"], k["t"]))
    return out


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@pytest.mark.asyncio
async def test_duplicate_reorder_and_skip_shape_the_closed_klines() -> None:
    async with replay(10, bar_interval_s=0.05) as rx:
        async with connect(f"{rx.ws_url}?streams={ALL_STREAMS}") as ws:
            assert await closed_klines(ws, 3) == [(s, START_MS) for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT")]
            rx.faults.duplicate_closed(2)
            rx.faults.skip_closed("ETH/USDT", 2)
            got = await closed_klines(ws, 4)
            t1 = START_MS + H
            assert got == [("BTCUSDT", t1), ("BTCUSDT", t1), ("XRPUSDT", t1), ("XRPUSDT", t1)]
            rx.faults.reorder_next_bar()
            got = await closed_klines(ws, 5)
            t2 = t1 + H
            # Reverse symbol order (ETH still skipped), then the previous bar again, all three symbols.
            assert got == [("XRPUSDT", t2), ("BTCUSDT", t2), ("BTCUSDT", t1), ("ETHUSDT", t1), ("XRPUSDT", t1)]
            assert await closed_klines(ws, 3) == [(s, t2 + H) for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT")]
    assert rx.faults.closed_skipped == 2


@pytest.mark.asyncio
async def test_skipped_klines_are_still_served_by_rest(http: aiohttp.ClientSession) -> None:
    async with replay(10, bar_interval_s=0.02) as rx:
        rx.faults.skip_closed("BTC/USDT", 3)
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            got = await closed_klines(ws, 2)
            assert got == [("BTCUSDT", START_MS + 3 * H), ("BTCUSDT", START_MS + 4 * H)]
            async with http.get(f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h") as r:
                rows = await r.json()
            assert [row[0] for row in rows[:5]] == [START_MS + i * H for i in range(5)]


@pytest.mark.asyncio
async def test_drop_connections_aborts_without_a_close_frame() -> None:
    async with replay(1000, bar_interval_s=0.01) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as a, \
                connect(f"{rx.ws_url}?streams=ethusdt@kline_1h") as b:
            await closed_klines(a, 1)
            assert await rx.faults.drop_connections() == 2
            for ws in (a, b):
                with pytest.raises(ConnectionClosedError) as info:
                    async with asyncio.timeout(5):
                        while True:
                            await ws.recv()
                assert info.value.rcvd is None  # no close frame: the link just died
        assert rx.faults.drops == 2
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as again:
            await closed_klines(again, 1)  # the exchange itself carries on
    assert set(rx.closed_sent) >= {("BTC/USDT", START_MS)}


@pytest.mark.asyncio
async def test_go_silent_sends_nothing_while_the_clock_and_rest_go_on(http: aiohttp.ClientSession) -> None:
    async with replay(1000, bar_interval_s=0.01) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h", ping_interval=None) as ws:
            await closed_klines(ws, 1)
            rx.faults.go_silent(0.4)
            await asyncio.sleep(0.05)
            while True:  # what was in flight before the silence
                try:
                    await asyncio.wait_for(ws.recv(), 0.05)
                except TimeoutError:
                    break
            t0 = rx.now_ms
            pong = await ws.ping()
            with pytest.raises(TimeoutError):  # nothing read, so pings go unanswered
                await asyncio.wait_for(asyncio.shield(pong), 0.15)
            async with http.get(f"{rx.rest_url}/time") as r:
                assert (await r.json())["serverTime"] > t0  # the exchange's clock runs on
            (sym, t), = await closed_klines(ws, 1, timeout=2)
            assert rx.faults.frames_withheld > 0
            await asyncio.wait_for(pong, 1)  # answered once the silence is over
        async with http.get(f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h&limit=1000") as r:
            served = [row[0] for row in await r.json()]
    assert all(START_MS + i * H in served for i in range((t - START_MS) // H))


@pytest.mark.asyncio
async def test_server_shutdown_is_announced_then_the_connection_closes() -> None:
    async with replay(1000, bar_interval_s=0.01) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            await closed_klines(ws, 1)
            assert await rx.faults.send_server_shutdown(close_after_s=0.05) == 1
            msgs = []
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    while True:
                        msgs.append(json.loads(await ws.recv()))
            notice = [m for m in msgs if m.get("e") == "serverShutdown"]
            assert len(notice) == 1 and set(notice[0]) == {"e", "E"} and notice[0]["E"] > START_MS
            assert ws.close_code == 1001


@pytest.mark.asyncio
async def test_inject_frame_sends_text_and_binary_to_every_client() -> None:
    async with replay(2, start_index=2) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as a, connect(f"{rx.ws_url}") as b:
            await asyncio.sleep(0.05)
            assert await rx.faults.inject_frame("not json") == 2
            assert await rx.faults.inject_frame(b"\x00\xff") == 2
            for ws in (a, b):
                assert await asyncio.wait_for(ws.recv(), 2) == "not json"
                assert await asyncio.wait_for(ws.recv(), 2) == b"\x00\xff"
        assert rx.faults.frames_injected == 4


@pytest.mark.asyncio
async def test_connections_are_closed_after_their_lifetime() -> None:
    async with replay(1000, bar_interval_s=0.01, max_connection_s=0.2) as rx:
        async with connect(f"{rx.ws_url}?streams=btcusdt@kline_1h") as ws:
            start = time.monotonic()
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(3):
                    while True:
                        await ws.recv()
            assert 0.15 < time.monotonic() - start < 2
            assert ws.close_code == 1001 and ws.close_reason == "connection lifetime reached"
        assert rx.lifetime_closes == 1
    with pytest.raises(ConfigError):
        replay(max_connection_s=0)


# -- REST faults ---------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "status", "code"), [
    ("429", 429, -1003), ("418", 418, -1003), ("500", 500, -1000), ("bad_symbol", 400, -1121)])
@pytest.mark.asyncio
async def test_rest_faults_answer_as_binance(http: aiohttp.ClientSession, kind: str, status: int,
                                             code: int) -> None:
    async with replay(start_index=40) as rx:
        rx.faults.fail_next_rest(kind, n=2, retry_after=7)
        url = f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h&limit=1"
        for _ in range(2):
            async with http.get(url) as r:
                body = await r.json()
                assert r.status == status and body["code"] == code and isinstance(body["msg"], str)
                assert r.headers.get("Retry-After") == ("7" if kind in ("429", "418") else None)
        async with http.get(url) as r:
            assert r.status == 200 and len(await r.json()) == 1
        assert rx.faults.rest_faults_served == {kind: 2}


@pytest.mark.asyncio
async def test_rest_503_garbage_and_timeout(http: aiohttp.ClientSession) -> None:
    async with replay(start_index=40) as rx:
        url = f"{rx.rest_url}/time"
        rx.faults.fail_next_rest("503")
        async with http.get(url) as r:
            assert r.status == 503 and await r.text() == "Service Unavailable"
        rx.faults.fail_next_rest("garbage_json")
        async with http.get(url) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
            with pytest.raises(ValueError):
                json.loads(await r.text())
        rx.faults.fail_next_rest("timeout", delay_s=5.0)
        with pytest.raises(TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.2)) as r:
                await r.read()
        async with http.get(url) as r:
            assert r.status == 200
        with pytest.raises(ValueError, match="allowed"):
            rx.faults.fail_next_rest("404")
    # stop() released the delayed answer at once instead of waiting 5 s.


@pytest.mark.asyncio
async def test_rest_hostile_replaces_the_next_klines_answers(http: aiohttp.ClientSession) -> None:
    async with replay(start_index=40) as rx:
        url = f"{rx.rest_url}/klines?symbol=BTCUSDT&interval=1h&limit=5"
        async with http.get(url) as r:
            clean = await r.json()
        seen: list[int] = []

        def hostile(rows: list[list[Any]]) -> Any:
            seen.append(len(rows))
            return [rows[0][:3], "junk", float("nan")]

        rx.faults.rest_hostile(hostile, n=2)
        async with http.get(f"{rx.rest_url}/time") as r:  # not a klines request: untouched
            assert r.status == 200
        for _ in range(2):
            async with http.get(url) as r:
                assert json.loads(await r.text(), parse_constant=str) == [clean[0][:3], "junk", "NaN"]
        async with http.get(url) as r:
            assert await r.json() == clean
        assert seen == [5, 5]
        rx.faults.rest_hostile(lambda rows: b"\x00 raw", n=1)
        async with http.get(url) as r:
            assert await r.read() == b"\x00 raw"


# --- Faults on its own: the collaborator needs only the connections and a clock, not the server ----------------

def frame(market: str, t: int) -> _Event:
    return _Event(f"{market}@kline_1h", json.dumps({"k": {"s": market.upper(), "t": t, "c": "1.0"}}),
                  (market.upper(), t))


def test_faults_shape_a_bars_closed_klines_without_a_server() -> None:
    faults = Faults(Connections(), clock=lambda: START_MS)
    bar0 = [frame("btcusdt", 0), frame("ethusdt", 0)]
    bar1 = [frame("btcusdt", 1), frame("ethusdt", 1)]
    bar2 = [frame("btcusdt", 2), frame("ethusdt", 2)]
    assert faults.closed_klines(bar0) == bar0   # nothing armed: as recorded
    faults.skip_closed("ETH/USDT", 1)
    faults.duplicate_closed(1)
    faults.reorder_next_bar()
    # BTC doubled, ETH withheld, reversed, then the previous bar again (stale).
    assert faults.closed_klines(bar1) == [bar1[0], bar1[0], *bar0]
    faults.falsify_closed("BTC/USDT", lambda k: k.update(c="99999"), then_true=True)
    out = faults.closed_klines(bar2)
    assert [json.loads(ev.data)["k"]["c"] for ev in out] == ["99999", "1.0", "1.0"]
    assert out[1:] == bar2
    assert (faults.closed_skipped, faults.closed_falsified, faults.frames_withheld) == (1, 1, 0)


@pytest.mark.asyncio
async def test_faults_rest_answers_and_silence_without_a_server() -> None:
    faults = Faults(Connections(), clock=lambda: START_MS)
    assert faults.rest_answer("/api/v3/time") is None
    faults.fail_next_rest("429", retry_after=7)
    answer = faults.rest_answer("/api/v3/klines")
    assert not isinstance(answer, Awaitable) and answer is not None
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert json.loads(answer.body)["code"] == -1003
    assert faults.rest_faults_served == {"429": 1} and faults.rest_faults_pending == 0
    faults.go_silent(60)
    assert faults.withheld([frame("btcusdt", 0)]) and faults.frames_withheld == 1
    assert await faults.drop_connections() == 0   # no client connected: nothing to drop
    await faults.aclose()   # ends the silence
    assert not faults.withheld([frame("btcusdt", 1)])
