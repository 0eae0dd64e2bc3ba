"""Retry a ccxt call through transient failures, with exponential backoff and full jitter.

What is retried and what is not (ccxt's tree, ``ccxt/base/errors.py``)::

    BaseError
    ├── ExchangeError            NOT retried: the request itself is wrong or refused
    │   ├── BadRequest ── BadSymbol, AuthenticationError ── PermissionDenied,
    │   └── InvalidOrder, InsufficientFunds, NotSupported, …
    └── OperationFailed          retried: the exchange or the path to it failed this time
        ├── NetworkError
        │   ├── DDoSProtection        HTTP 418 / 429 from Binance (ccxt maps both here)
        │   ├── RateLimitExceeded     HTTP 429, code -1003
        │   ├── ExchangeNotAvailable  HTTP 5xx, connection refused or reset (── OnMaintenance)
        │   ├── RequestTimeout        no answer within ``exchange.timeout``
        │   └── InvalidNonce          NOT retried: the clock or nonce must be fixed first
        └── BadResponse               a body that is not what the endpoint returns (garbled JSON)

Binance asks a client that got 429 or 418 to wait ``Retry-After`` seconds
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits);
the wait is then at least that.  A ban longer than ``max_retry_after_s`` is not
waited out: it is reported at once.  Any other exception (a ccxt parser tripping
over a hostile body) is not retried either.

Failures are raised as ``error_type`` (default :class:`~bot.errors.FeedError`)
naming what was attempted, the ccxt class and its message; ``error_type=None``
re-raises the original exception (for an executor that maps ccxt errors itself).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt

from bot.errors import BotError, FeedError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Explicit, although NetworkError already covers the first four: the list is the policy.
RETRYABLE: tuple[type[BaseException], ...] = (
    ccxt.RateLimitExceeded,
    ccxt.DDoSProtection,
    ccxt.ExchangeNotAvailable,
    ccxt.RequestTimeout,
    ccxt.NetworkError,
    ccxt.BadResponse,
    ccxt.OperationFailed,
)
NOT_RETRYABLE: tuple[type[BaseException], ...] = (ccxt.InvalidNonce, ccxt.ExchangeError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry.

    The pause before retry ``n`` (1-based) is uniform in ``[0, min(max_delay_s, base_delay_s × 2^(n-1))]``
    ("full jitter"), and at least the exchange's ``Retry-After`` when it sent one.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_retry_after_s < 0:
            raise ValueError(f"invalid retry policy {self}")

    def backoff_s(self, retry_no: int, rng: random.Random | None = None) -> float:
        """The jittered pause before retry number ``retry_no`` (1, 2, …)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** min(retry_no - 1, 30))
        return (rng or random).uniform(0.0, cap)


DEFAULT_POLICY = RetryPolicy()


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient ccxt failure worth another attempt."""
    return isinstance(exc, RETRYABLE) and not isinstance(exc, NOT_RETRYABLE)


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """The ``Retry-After`` header in seconds (Binance sends an integer), or None."""
    if not headers:
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "retry-after":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


async def call_with_retry(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    exchange: Any = None,
    error_type: type[BotError] | None = FeedError,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)``, retrying transient ccxt failures per ``policy``.

    ``what`` names the call in logs and errors (``"BTC/USDT klines from 1700000000000"``).
    ``exchange`` is read for ``last_response_headers`` (ccxt keeps them even for error
    answers) to honour ``Retry-After``; they are cleared before each attempt so a
    timeout never reuses the previous answer's header.  ``sleep`` and ``rng`` are
    seams for tests.
    """
    attempt = 0
    while True:
        attempt += 1
        if exchange is not None:
            exchange.last_response_headers = None
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retryable = is_retryable(exc)
            wait_at_least = retry_after_s(getattr(exchange, "last_response_headers", None)) if exchange else None
            banned = wait_at_least is not None and wait_at_least > policy.max_retry_after_s
            if not retryable or attempt >= policy.max_attempts or banned:
                if not retryable:
                    why = "not retryable"
                elif banned:
                    why = f"the exchange asks to wait {wait_at_least:g} s (Retry-After), over the " \
                          f"{policy.max_retry_after_s:g} s limit"
                else:
                    why = f"gave up after {attempt} attempts"
                log.warning("%s failed (%s): %s", what, why, _describe(exc))
                if error_type is None:
                    raise
                raise error_type(f"{what} failed ({why}): {_describe(exc)}") from exc
            delay = policy.backoff_s(attempt, rng)
            if wait_at_least is not None:
                delay = max(delay, wait_at_least)
            log.warning("%s failed on attempt %d/%d: %s; retrying in %.2f s%s", what, attempt,
                        policy.max_attempts, _describe(exc), delay,
                        f" (Retry-After {wait_at_least:g} s)" if wait_at_least is not None else "")
            await sleep(delay)
