"""Build the live executor from the settings: the ccxt client, the book and the start-up reconciliation.

:func:`make_trading_exchange` is the one place a signed ccxt client is made:
rate limiter on, exact decimal strings (``number = str``, as in
:func:`bot.feeds.backfill.make_exchange`), the configured ``recvWindow`` and
request timeout, the testnet / demo switch (``[exchange] sandbox``: ccxt's
``set_sandbox_mode`` for spot, ``enable_demo_trading`` for USDT-M futures, whose
old testnet ccxt no longer offers) and the ``rest_url`` override that points
every API family at a loopback stub.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async

from bot.config import ExchangeSettings, Settings
from bot.config.secrets import Credentials, require_live
from bot.errors import ConfigError, ExecutionError
from bot.execution.exchange import ExchangeExecutor
from bot.execution.limits import NotionalCap
from bot.execution.paper import PaperAccount
from bot.execution.reconcile import futures_holdings
from bot.feeds.backfill import point_at
from bot.feeds.retry import RetryPolicy, call_with_retry
from bot.store.trade_store import ResumeState

log = logging.getLogger(__name__)

_ZERO = Decimal(0)


def make_trading_exchange(s: ExchangeSettings, credentials: Credentials) -> Any:
    """A signed, rate-limited async ccxt client for ``s.market`` (spot or USDT-M futures)."""
    options: dict[str, Any] = {
        "recvWindow": s.recv_window_ms,
        "adjustForTimeDifference": False,
        "fetchCurrencies": False,       # sapi capital/config/getall: not needed to trade
        "fetchMargins": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    }
    if s.market == "spot":
        options.update(defaultType="spot", fetchMarkets={"types": ["spot"], "loadAllOptions": False})
        exchange = ccxt_async.binance({"enableRateLimit": True, "options": options})
    else:
        exchange = ccxt_async.binanceusdm({"enableRateLimit": True, "options": options})
    exchange.apiKey, exchange.secret = credentials.api_key, credentials.api_secret
    if credentials.password:
        exchange.password = credentials.password
    exchange.number = str   # exact decimal strings, never floats
    exchange.timeout = max(1, int(s.timeout_s * 1000))
    if s.sandbox:
        if s.market == "spot":
            exchange.set_sandbox_mode(True)
        else:
            exchange.enable_demo_trading(True)
    if s.rest_url:
        point_at(exchange, s.rest_url)
        if s.market == "usdm":
            # ccxt picks its USDT-M error map by the fapi host name; a stub's URL keeps that classification
            # (-2019 "Margin is insufficient." is InsufficientFunds, -4116 a duplicate id, ...).
            for kind in ("exact", "broad"):
                linear = (exchange.exceptions.get("linear") or {}).get(kind) or {}
                exchange.exceptions[kind] = {**exchange.exceptions[kind], **linear}
    return exchange


def _policy(settings: Settings) -> RetryPolicy:
    f = settings.feed
    return RetryPolicy(max_attempts=f.rest_max_attempts, max_delay_s=f.rest_retry_max_s,
                       max_retry_after_s=f.rest_max_retry_after_s)


async def open_exchange_executor(settings: Settings, credentials: Credentials | None, resume: ResumeState | None,
                                 logged_trades: Mapping[str, set[str]] | None = None,
                                 exchange: Any = None, *, live_flag: bool) -> ExchangeExecutor:
    """Load the markets, restore (or start) the book, reconcile with the exchange; close with ``aclose``.

    The live guard sits here, before any client exists: ``run.mode = "live"``, ``live_flag`` (the command
    line's ``--live``) and ``credentials`` must all hold, or ConfigError (:func:`bot.config.secrets.require_live`).
    """
    credentials = require_live(settings.run.mode, live_flag, credentials)
    exchange = exchange if exchange is not None else make_trading_exchange(settings.exchange, credentials)
    symbols = settings.market.symbols
    policy = _policy(settings)
    try:
        await call_with_retry(exchange.load_markets, what="markets", policy=policy, exchange=exchange,
                              error_type=ExecutionError)
        missing = _missing(exchange, symbols, settings.exchange.market)
        if missing:
            raise ConfigError(f"config key 'market.symbols': {', '.join(missing)} not traded on "
                              f"{settings.exchange.name} {settings.exchange.market}")
        quotes = {exchange.market(s)["quote"] for s in symbols}
        if len(quotes) != 1:
            raise ConfigError(f"config key 'market.symbols': live trading needs one quote asset (the cash), "
                              f"got {', '.join(sorted(quotes))}")
        if resume is not None:
            book = PaperAccount(resume.cash, _ZERO, _ZERO, settings.paper.fee_step, positions=resume.positions,
                                margins=resume.margins, marks=resume.marks, symbols=symbols)
        else:
            book = await _fresh_book(exchange, settings, quotes.pop(), policy)
        executor = ExchangeExecutor(exchange, settings.exchange, settings.run.id, symbols, book,
                                    open_orders=resume.open_orders if resume else (),
                                    logged_trades=logged_trades, policy=policy,
                                    cap=NotionalCap.from_settings(settings))
        await executor.reconcile()
    except BaseException:
        await exchange.close()
        raise
    return executor


def _missing(exchange: Any, symbols: Sequence[str], market: str) -> list[str]:
    """Config symbols the exchange does not trade: spot by name; USDT-M as the linear perpetual of the
    name (``BTC/USDT`` trades ``BTC/USDT:USDT``; events keep the config's symbol)."""
    if market == "spot":
        return [s for s in symbols if s not in exchange.markets]
    out = []
    for s in symbols:
        try:
            m = exchange.market(s)
        except ccxt_async.BadSymbol:
            out.append(s)
            continue
        if not (m.get("swap") and m.get("linear")):
            out.append(s)
    return out


async def _fresh_book(exchange: Any, settings: Settings, quote: str, policy: RetryPolicy) -> PaperAccount:
    """A new run's book: the quote balance is the cash; a base balance already held is a position.

    USDT-M: the positions are the account's open positions (amount and entry price) and the cash is the
    wallet balance less their entry value (see :func:`~bot.execution.reconcile.futures_holdings`).
    """
    if settings.exchange.market == "usdm":
        async def call(fn: Any, *args: Any, what: str) -> Any:
            return await call_with_retry(fn, *args, what=what, policy=policy, exchange=exchange,
                                         error_type=ExecutionError)
        cash, held = await futures_holdings(exchange, settings.market.symbols, call)
        for symbol, (qty, entry) in held.items():
            log.warning("%s: a position of %s (entry %s) is open on the account at the run's start; counted as "
                        "a position that no fill explains (the report will say so)", symbol, qty, entry)
        log.info("new live run: %s %s on the USDT-M account (wallet less the positions' entry value)", cash, quote)
        return PaperAccount(cash, _ZERO, _ZERO, settings.paper.fee_step, positions=held,
                            symbols=settings.market.symbols)
    totals = (await call_with_retry(exchange.fetch_balance, what="balances", policy=policy, exchange=exchange,
                                    error_type=ExecutionError)).get("total") or {}
    cash = Decimal(str(totals.get(quote) or "0"))
    positions: dict[str, tuple[Decimal, Decimal]] = {}
    if settings.exchange.market == "spot":
        for symbol in settings.market.symbols:
            held = Decimal(str(totals.get(exchange.market(symbol)["base"]) or "0"))
            if held:
                log.warning("%s: %s already held on the account at the run's start; counted as a position that "
                            "no fill explains (the report will say so)", symbol, held)
                positions[symbol] = (held, _ZERO)
    log.info("new live run: %s %s on the exchange", cash, quote)
    return PaperAccount(cash, _ZERO, _ZERO, settings.paper.fee_step, positions=positions,
                        symbols=settings.market.symbols)


__all__ = ["make_trading_exchange", "open_exchange_executor"]
