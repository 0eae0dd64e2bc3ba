"""KlineFeed against the replay exchange's faults, over real loopback sockets: it heals itself."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.feeds.binance import reason_kind
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.websocket import Disconnected, KlineFeed, Received

H = 3_600_000
START_MS = 1_704_067_200_000
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.002)


@asynccontextmanager
async def running(feed: KlineFeed) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(feed.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def drain(feed: KlineFeed) -> list[Received]:
    out = []
    while not feed.queue.empty():
        out.append(feed.queue.get_nowait())
    return out


def fast_feed(rx: ReplayExchange, **kw: Any) -> KlineFeed:
    reconnect_max_s = kw.pop("reconnect_max_s", 0.05)
    opts: dict[str, Any] = {"reconnect_base_s": 0.01, "rng": random.Random(1), **kw}
    return KlineFeed(rx.ws_url, SYMBOLS, "1h", H, reconnect_max_s, **opts)


@pytest.mark.asyncio
async def test_a_hundred_drops_lose_nothing_sent_while_connected() -> None:
    data = generate_market(SYMBOLS, 6000, START_MS, seed=9)
    seen: list[Disconnected] = []
    async with ReplayExchange(data, bar_interval_s=0.002, updates_per_bar=0) as rx:
        feed = fast_feed(rx, on_disconnect=seen.append)
        async with running(feed) as task:
            for i in range(100):
                await wait_until(lambda i=i: feed.connections == i + 1)
                closed = feed.counts["closed"]
                await wait_until(lambda closed=closed: feed.counts["closed"] >= closed + 2)
                assert await rx.faults.drop_connections() == 1
            await wait_until(lambda: feed.connections == 101)
            sent = set(rx.closed_sent)
            await wait_until(lambda: feed.counts["closed"] >= len(rx.closed_sent))
            assert not task.done()
    got = [(r.candle.symbol, r.candle.open_ms) for r in drain(feed)]
    assert len(got) == len(set(got))  # nothing twice
    assert sent <= set(got)  # every closed kline handed to a live connection arrived
    assert rx.faults.drops == 100 and feed.disconnects["dropped"] == 100
    assert feed.reconnects >= 100 and len(seen) == 100 and feed.events.qsize() == 100
    assert all(d.reason == "dropped" and d.closed_received >= 2 for d in seen)
    assert [d.connection_no for d in seen] == list(range(1, 101))
    assert seen[-1].last_closed_open_ms is not None
    assert rx.faults.frames_withheld == 0 and feed.counts["rejected"] == 0


@pytest.mark.asyncio
async def test_a_silent_half_open_link_is_cut_and_reopened() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=10)
    async with ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0) as rx:
        feed = fast_feed(rx, ping_interval_s=None, silence_timeout_s=0.2)
        async with running(feed):
            await wait_until(lambda: feed.counts["closed"] >= 2)
            rx.faults.go_silent(0.5)
            await wait_until(lambda: feed.disconnects["silence"] >= 1, 2)
            assert feed.events.get_nowait().reason == "silence"
            closed = feed.counts["closed"]
            # Once the exchange talks again the feed is back, on a fresh connection.
            await wait_until(lambda: feed.counts["closed"] >= closed + 4, 5)
            assert feed.connections >= 2
    assert rx.faults.frames_withheld > 0  # bars closed during the silence: REST has them, the stream never sent them


@pytest.mark.asyncio
async def test_an_unanswered_keepalive_ping_is_a_dead_link() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=11)
    async with ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0) as rx:
        feed = fast_feed(rx, ping_interval_s=0.1, ping_timeout_s=0.1, silence_timeout_s=60, close_timeout_s=0.2)
        async with running(feed):
            await wait_until(lambda: feed.counts["closed"] >= 2)
            rx.faults.go_silent(5)  # long: the ping timeout, not the silence, must end the connection
            await wait_until(lambda: feed.disconnects["ping timeout"] >= 1, 2)
            assert feed.connections >= 1 and feed.disconnects["silence"] == 0


@pytest.mark.asyncio
async def test_server_shutdown_means_reconnect_now() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=12)
    async with ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0) as rx:
        # A huge backoff: only an immediate reconnect can pass the 1 s wait below.
        feed = fast_feed(rx, reconnect_base_s=30.0, reconnect_max_s=30.0, min_connection_s=0.05)
        async with running(feed):
            await wait_until(lambda: feed.counts["closed"] >= 2)
            await asyncio.sleep(0.06)
            assert await rx.faults.send_server_shutdown(close_after_s=3.0) == 1
            await wait_until(lambda: feed.connections == 2, 1)
            closed = feed.counts["closed"]
            await wait_until(lambda: feed.counts["closed"] > closed, 2)
    assert feed.disconnects["server shutdown"] == 1 and feed.counts["shutdown"] == 1
    assert rx.faults.shutdowns_sent == 1


@pytest.mark.asyncio
async def test_a_shutdown_notice_right_after_connecting_is_not_obeyed_at_once() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=12)
    async with ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0) as rx:
        feed = fast_feed(rx, reconnect_base_s=30.0, reconnect_max_s=30.0, min_connection_s=10)
        async with running(feed):
            await wait_until(lambda: feed.counts["closed"] >= 1)
            await rx.faults.send_server_shutdown(close_after_s=0.01)
            await wait_until(lambda: feed.disconnects["server shutdown"] == 1, 1)
            await asyncio.sleep(0.2)
            assert feed.connections == 1  # backing off: a server that says this on every connect is not hammered


@pytest.mark.asyncio
async def test_the_feed_reconnects_before_its_connection_lifetime_ends() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=13)
    async with ReplayExchange(data, bar_interval_s=0.005, updates_per_bar=0) as rx:
        feed = fast_feed(rx, reconnect_base_s=30.0, reconnect_max_s=30.0, max_connection_s=0.15,
                         min_connection_s=0.05)
        async with running(feed):
            await wait_until(lambda: feed.connections >= 4, 2)
            closed = feed.counts["closed"]
            await wait_until(lambda: feed.counts["closed"] > closed)
    assert feed.disconnects["lifetime"] >= 3 and set(feed.disconnects) == {"lifetime"}


@pytest.mark.asyncio
async def test_the_exchange_cutting_old_connections_is_survived() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=14)
    async with ReplayExchange(data, bar_interval_s=0.005, updates_per_bar=0, max_connection_s=0.1) as rx:
        feed = fast_feed(rx)
        async with running(feed):
            await wait_until(lambda: feed.connections >= 3, 3)
            closed = feed.counts["closed"]
            await wait_until(lambda: feed.counts["closed"] > closed)
    assert rx.lifetime_closes >= 2 and feed.disconnects["closed by server"] >= 2


@pytest.mark.asyncio
async def test_a_10_mb_frame_is_rejected_and_the_feed_goes_on() -> None:
    data = generate_market(SYMBOLS, 3000, START_MS, seed=15)
    async with ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0) as rx:
        feed = fast_feed(rx)
        async with running(feed):
            await wait_until(lambda: feed.counts["closed"] >= 2)
            assert await rx.faults.inject_frame("x" * 10_000_000) == 1
            await wait_until(lambda: feed.disconnects["frame too large"] == 1)
            closed = feed.counts["closed"]
            await wait_until(lambda: feed.counts["closed"] >= closed + 2)
    assert feed.rejections["frame too large"] == 1 and feed.counts["rejected"] == 1
    assert "1009" in feed.rejection_examples["frame too large"]
    assert feed.connections >= 2


@pytest.mark.asyncio
async def test_connection_refused_backs_off_exponentially_and_comes_back() -> None:
    data = generate_market(SYMBOLS, 100, START_MS, seed=16)
    rx = ReplayExchange(data, bar_interval_s=0.01, updates_per_bar=0)
    await rx.start()
    port = rx.port
    await rx.stop()
    feed = KlineFeed(f"ws://127.0.0.1:{port}/stream", SYMBOLS, "1h", H, 0.2, reconnect_base_s=0.01,
                     rng=random.Random(3))
    async with running(feed):
        await wait_until(lambda: feed.reconnects >= 5, 5)
        assert feed.connections == 0 and feed.events.empty()  # never connected: nothing was missed
        async with ReplayExchange(data, port=port, bar_interval_s=0.01, updates_per_bar=0) as again:
            await wait_until(lambda: feed.counts["closed"] >= 2, 5)
            assert again.connections == 1


def test_backoff_is_full_jitter_capped_and_exponential() -> None:
    feed = KlineFeed("ws://127.0.0.1:1/stream", SYMBOLS, "1h", H, 8.0, reconnect_base_s=0.5,
                     rng=random.Random(0))
    for failures, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (60, 8.0)]:
        delays = [feed.backoff_s(failures) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # spread over the whole range
    with pytest.raises(ValueError):
        KlineFeed("ws://x/stream", SYMBOLS, "1h", H, silence_timeout_s=0)


def test_future_klines_are_rejected_by_the_wall_clock_and_counted() -> None:
    feed = KlineFeed("ws://127.0.0.1:1/stream", SYMBOLS, "1h", H, clock=lambda: START_MS / 1000)

    def kline(t: int) -> str:
        k = {"t": t, "T": t + H - 1, "s": "BTCUSDT", "i": "1h", "o": "1", "h": "2", "l": "0.5", "c": "1.5",
             "v": "10", "x": True}
        return json.dumps({"stream": "btcusdt@kline_1h", "data": {"e": "kline", "E": t + H, "s": "BTCUSDT",
                                                                   "k": k}})

    assert feed.on_frame(kline(START_MS + 2 * H), 0.0) == "closed"
    assert feed.on_frame(kline(START_MS + 3 * H), 0.0) == "rejected"
    assert feed.on_frame(kline(1_400_000_000_000), 0.0) == "rejected"
    assert feed.rejections == {"timestamp out of range": 2}
    assert "before 2017" in feed.rejection_examples["timestamp out of range"]
    assert feed.last_closed_open_ms == START_MS + 2 * H


# -- hostile frames, as a property, through one live connection ----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)


@st.composite
def mutated_klines(draw: st.DrawFn) -> str:
    t = START_MS + draw(st.integers(-3, 3)) * H + draw(st.sampled_from([0, 0, 1, -1, 60_000]))
    k: dict[str, Any] = {"t": t, "T": t + H - 1, "s": draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT"])),
                         "i": "1h", "o": "100.5", "h": "101", "l": "99", "c": "100", "v": "3.2", "x": True}
    for key in draw(st.lists(st.sampled_from(sorted(k)), max_size=3)):
        if draw(st.booleans()):
            k[key] = draw(json_values)
        else:
            k.pop(key, None)
    stream = draw(st.sampled_from(["btcusdt@kline_1h", "ethusdt@kline_1h", "xrpusdt@kline_1m"]))
    return json.dumps({"stream": stream, "data": {"e": "kline", "E": t + H, "s": "BTCUSDT", "k": k}})


hostile_frames = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    json_values.map(json.dumps),
    mutated_klines(),
    st.sampled_from(['{"stream":"btcusdt@kline_1h","data":[]}', "[" * 5000 + "]" * 5000, "{}", "null", "1e999",
                     '{"result":null,"id":1}', '{"e":"24hrTicker"}', '\x00', '"\\ud800"']),
)


async def _inject_and_wait(rx: ReplayExchange, feed: KlineFeed, frames: list[str | bytes]) -> None:
    before = sum(feed.counts.values())
    for f in frames:
        assert await rx.faults.inject_frame(f) == 1
    await wait_until(lambda: sum(feed.counts.values()) >= before + len(frames))
    assert sum(feed.counts.values()) == before + len(frames)


def test_hostile_frames_never_break_the_feed() -> None:
    data = generate_market(SYMBOLS, 10, START_MS, seed=17)

    async def start() -> tuple[ReplayExchange, KlineFeed, asyncio.Task[None]]:
        rx = ReplayExchange(data, start_index=10)  # nothing to replay: only injected frames arrive
        await rx.start()
        feed = KlineFeed(rx.ws_url, SYMBOLS, "1h", H, clock=lambda: START_MS / 1000)
        task = asyncio.create_task(feed.run())
        await wait_until(lambda: feed.connections == 1 and rx.connections == 1)
        return rx, feed, task

    async def stop(rx: ReplayExchange, task: asyncio.Task[None]) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rx.stop()

    with asyncio.Runner() as runner:
        rx, feed, task = runner.run(start())
        try:
            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(st.lists(hostile_frames, min_size=1, max_size=4))
            def check(frames: list[str | bytes]) -> None:
                runner.run(_inject_and_wait(rx, feed, frames))
                assert not task.done() and feed.connections == 1

            check()
            assert feed.counts["rejected"] > 100
            assert sum(feed.rejections.values()) == feed.counts["rejected"]
            assert set(feed.rejections) == set(feed.rejection_examples)
            assert all(kind and reason_kind(feed.rejection_examples[kind]) == kind for kind in feed.rejections)
            assert feed.counts["closed"] == feed.queue.qsize()
        finally:
            runner.run(stop(rx, task))
