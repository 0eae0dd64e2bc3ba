"""call_with_retry: what is retried, how long it waits, and every REST fault through real ccxt calls."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from bot.errors import ExecutionError, FeedError
from bot.feeds.backfill import fetch_range, make_exchange
from bot.feeds.replay.server import ReplayExchange
from bot.feeds.replay.synthetic import generate_market
from bot.feeds.retry import RetryPolicy, call_with_retry, retry_after_s

H = 3_600_000
START_MS = 1_704_067_200_000


class Sleeps:
    """An injected sleep that records what it was asked for and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


class FakeExchange:
    last_response_headers: dict[str, str] | None = None


def failing(errors: list[BaseException], exchange: FakeExchange | None = None,
            headers: dict[str, str] | None = None) -> Callable[..., Awaitable[str]]:
    """A call that raises ``errors`` one by one (setting response headers as ccxt does), then succeeds."""
    calls = iter(errors)

    async def call(*args: Any, **kwargs: Any) -> str:
        err = next(calls, None)
        if err is None:
            return f"ok {args} {kwargs}"
        if exchange is not None:
            exchange.last_response_headers = headers
        raise err

    return call


# -- the policy, without a network ----------------------------------------------------------

@pytest.mark.parametrize("exc", [ccxt.NetworkError("reset"), ccxt.RequestTimeout("slow"),
                                 ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("418"),
                                 ccxt.ExchangeNotAvailable("503"), ccxt.OnMaintenance("upgrade"),
                                 ccxt.BadResponse("garbled"), ccxt.OperationFailed("-1000")])
@pytest.mark.asyncio
async def test_transient_errors_are_retried_with_backoff(exc: BaseException,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=3.0)
    with caplog.at_level(logging.WARNING, "bot.feeds.retry"):
        got = await call_with_retry(failing([exc, exc, exc]), 1, what="thing", policy=policy, sleep=sleeps,
                                    rng=random.Random(2), since=5)
    assert got == "ok (1,) {'since': 5}"
    assert len(sleeps.asked) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps.asked, (1.0, 2.0, 3.0), strict=True))
    logged = [r.getMessage() for r in caplog.records]
    assert [f"attempt {n}/4" in m for n, m in zip((1, 2, 3), logged, strict=True)] == [True] * 3
    assert all(type(exc).__name__ in m and "retrying in" in m for m in logged)


@pytest.mark.parametrize("exc", [ccxt.BadSymbol("nope"), ccxt.InvalidOrder("lot"), ccxt.AuthenticationError("key"),
                                 ccxt.PermissionDenied("ip"), ccxt.InsufficientFunds("0"), ccxt.ExchangeError("x"),
                                 ccxt.BadRequest("-1100"), ccxt.InvalidNonce("-1021"), TypeError("ccxt parser")])
@pytest.mark.asyncio
async def test_request_errors_are_raised_at_once(exc: BaseException) -> None:
    sleeps = Sleeps()
    with pytest.raises(FeedError, match=f"BTC/USDT klines failed \\(not retryable\\): {type(exc).__name__}: ") as info:
        await call_with_retry(failing([exc]), what="BTC/USDT klines", sleep=sleeps)
    assert info.value.__cause__ is exc and sleeps.asked == []


@pytest.mark.asyncio
async def test_the_error_mapping_is_a_parameter() -> None:
    bad = ccxt.InsufficientFunds("balance 0")
    with pytest.raises(ccxt.InsufficientFunds):
        await call_with_retry(failing([bad]), what="order", error_type=None, sleep=Sleeps())
    with pytest.raises(ExecutionError, match="order failed .*InsufficientFunds: balance 0"):
        await call_with_retry(failing([bad]), what="order", error_type=ExecutionError, sleep=Sleeps())
    timeout = ccxt.RequestTimeout("t")
    with pytest.raises(ccxt.RequestTimeout):
        await call_with_retry(failing([timeout] * 5), what="order", error_type=None, sleep=Sleeps(),
                              policy=RetryPolicy(max_attempts=2))


@pytest.mark.asyncio
async def test_giving_up_after_max_attempts() -> None:
    sleeps = Sleeps()
    with pytest.raises(FeedError, match="gave up after 3 attempts.*RequestTimeout"):
        await call_with_retry(failing([ccxt.RequestTimeout("t")] * 9), what="x", sleep=sleeps,
                              policy=RetryPolicy(max_attempts=3))
    assert len(sleeps.asked) == 2


@pytest.mark.asyncio
async def test_retry_after_is_honoured_and_a_long_ban_is_not_waited_out() -> None:
    ex = FakeExchange()
    sleeps = Sleeps()
    call = failing([ccxt.DDoSProtection("429")] * 2, ex, {"Retry-After": "7"})
    assert (await call_with_retry(call, what="x", exchange=ex, sleep=sleeps,
                                  policy=RetryPolicy(max_delay_s=1.0))).startswith("ok")
    assert sleeps.asked == [7.0, 7.0] and ex.last_response_headers is None
    ban = failing([ccxt.DDoSProtection("418")], ex, {"retry-after": "86400"})
    with pytest.raises(FeedError, match="asks to wait 86400 s"):
        await call_with_retry(ban, what="x", exchange=ex, sleep=sleeps)
    assert len(sleeps.asked) == 2


def test_retry_after_parsing() -> None:
    assert retry_after_s({"Retry-After": "2"}) == 2.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_s({"Retry-After": "-1"}) is None and retry_after_s({"Retry-After": "nan"}) is None
    assert retry_after_s(None) is None and retry_after_s({}) is None
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- every REST fault of the replay exchange, through real ccxt calls ------------------------

@pytest_asyncio.fixture
async def exchange() -> AsyncIterator[tuple[ReplayExchange, Any]]:
    data = generate_market(["BTC/USDT"], 48, START_MS, seed=41)
    # The "timeout" fault answers after 2 s; the client gives up after 0.3 s.
    async with ReplayExchange(data, start_index=48) as rx, make_exchange(rx.rest_url, timeout_s=0.3) as ex:
        assert ex.timeout == 300
        await ex.load_markets()
        yield rx, ex


async def fetch_all(ex: Any, sleeps: Sleeps) -> tuple[list[Any], list[str]]:
    return await fetch_range(ex, "BTC/USDT", "1h", START_MS, START_MS + 47 * H, now_ms=START_MS + 48 * H,
                             sleep=sleeps)


@pytest.mark.parametrize("kind", ["429", "418", "503", "500", "timeout", "garbage_json"])
@pytest.mark.asyncio
async def test_transient_rest_faults_are_retried_until_success(exchange: tuple[ReplayExchange, Any],
                                                               kind: str) -> None:
    rx, ex = exchange
    sleeps = Sleeps()
    rx.faults.fail_next_rest(kind, n=2, retry_after=2, delay_s=2.0)
    candles, rejected = await fetch_all(ex, sleeps)
    assert len(candles) == 48 and rejected == []
    assert rx.faults.rest_faults_served == {kind: 2} and len(sleeps.asked) == 2
    if kind in ("429", "418"):
        assert all(s >= 2 for s in sleeps.asked)  # Retry-After: 2


@pytest.mark.asyncio
async def test_a_429_with_retry_after_waits_at_least_that(exchange: tuple[ReplayExchange, Any]) -> None:
    rx, ex = exchange
    sleeps = Sleeps()
    rx.faults.fail_next_rest("429", retry_after=2)
    candles, _ = await fetch_all(ex, sleeps)
    assert len(sleeps.asked) == 1 and sleeps.asked[0] >= 2 and len(candles) == 48


@pytest.mark.asyncio
async def test_bad_symbol_is_not_retried(exchange: tuple[ReplayExchange, Any]) -> None:
    rx, ex = exchange
    sleeps = Sleeps()
    rx.faults.fail_next_rest("bad_symbol", n=3)
    with pytest.raises(FeedError, match="BTC/USDT.*not retryable.*BadSymbol.*Invalid symbol"):
        await fetch_all(ex, sleeps)
    assert sleeps.asked == [] and rx.faults.rest_faults_served == {"bad_symbol": 1}


@pytest.mark.asyncio
async def test_garbage_that_never_stops_becomes_a_feed_error(exchange: tuple[ReplayExchange, Any]) -> None:
    """Decided: a body that is not JSON is a BadResponse (ccxt hands the raw text back), retried like a
    network failure — a proxy's error page is usually transient — and a FeedError once retries run out."""
    rx, ex = exchange
    sleeps = Sleeps()
    rx.faults.fail_next_rest("garbage_json", n=10)
    with pytest.raises(FeedError, match="gave up after 5 attempts.*BadResponse.*not a JSON array"):
        await fetch_all(ex, sleeps)
    assert len(sleeps.asked) == 4


@pytest.mark.asyncio
async def test_an_ip_ban_longer_than_allowed_fails_at_once(exchange: tuple[ReplayExchange, Any]) -> None:
    rx, ex = exchange
    sleeps = Sleeps()
    rx.faults.fail_next_rest("418")  # Binance bans for 2 minutes and more; the default here is 120 s
    with pytest.raises(FeedError, match="DDoSProtection"):
        await fetch_range(ex, "BTC/USDT", "1h", START_MS, START_MS + H, now_ms=START_MS + 48 * H, sleep=sleeps,
                          policy=RetryPolicy(max_retry_after_s=60))
    assert sleeps.asked == []
