"""Shared set-up of the exchange-executor tests: a Binance stub on loopback and executors pointed at it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from binance_stub import BinanceSpotStub, StubMarket
from binance_usdm_stub import BinanceUsdmStub
from bot.config import Settings
from bot.config.secrets import Credentials
from bot.events import Candle, SubmitOrder
from bot.execution.exchange import ExchangeExecutor
from bot.execution.live import open_exchange_executor
from bot.store.trade_store import ResumeState

D = Decimal
KEY, SECRET = "stub-key-0123456789", "stub-secret-abcdef"
CREDS = Credentials(KEY, SECRET)
BTC, ETH = "BTC/USDT", "ETH/USDT"
H = 3_600_000
T0 = 1_704_067_200_000


def make_stub(usdt: str = "10000", fill_parts: int = 1, **balances: str) -> BinanceSpotStub:
    markets = {BTC: StubMarket("BTC", "USDT", tick=D("0.01"), step=D("0.00001"), min_notional=D("5")),
               ETH: StubMarket("ETH", "USDT", tick=D("0.01"), step=D("0.0001"), min_notional=D("5"))}
    return BinanceSpotStub(markets, {BTC: D("40000"), ETH: D("2000")},
                           {"USDT": D(usdt), **{k: D(v) for k, v in balances.items()}},
                           api_key=KEY, api_secret=SECRET, market_fill_parts=fill_parts)


def make_usdm_stub(wallet: str = "10000", fill_parts: int = 1,
                   max_leverage: Mapping[str, int] | None = None) -> BinanceUsdmStub:
    """USDT-M perpetuals BTCUSDT (step 0.001, min notional 100) and ETHUSDT (step 0.001, min notional 20)."""
    markets = {BTC: StubMarket("BTC", "USDT", tick=D("0.10"), step=D("0.001"), min_qty=D("0.001"),
                               min_notional=D("100")),
               ETH: StubMarket("ETH", "USDT", tick=D("0.01"), step=D("0.001"), min_qty=D("0.001"),
                               min_notional=D("20"))}
    return BinanceUsdmStub(markets, {BTC: D("40000"), ETH: D("2000")}, D(wallet), api_key=KEY, api_secret=SECRET,
                           market_fill_parts=fill_parts, max_leverage=max_leverage or {BTC: 125, ETH: 20})


def settings_for(stub: BinanceSpotStub, run_id: str = "live-test", **exchange: Any) -> Settings:
    return Settings().with_overrides(
        run={"id": run_id, "mode": "live"}, market={"symbols": [BTC, ETH]},
        feed={"rest_max_attempts": 4, "rest_retry_max_s": 0.05},
        exchange={"rest_url": stub.rest_url, "sandbox": False, "poll_interval_s": 0.0, "timeout_s": 2.0,
                  **exchange})


async def open_executor(stub: BinanceSpotStub, resume: ResumeState | None = None,
                        logged: Mapping[str, set[str]] | None = None, **exchange: Any) -> ExchangeExecutor:
    return await open_exchange_executor(settings_for(stub, **exchange), CREDS, resume, logged, live_flag=True)


def candle(symbol: str, open_ms: int, price: str) -> Candle:
    p = D(price)
    return Candle(symbol, open_ms, open_ms + H - 1, p, p, p, p, D("1"))


def marked(ex: ExchangeExecutor, bar_ms: int, prices: Mapping[str, str]) -> None:
    ex.mark(bar_ms, {s: D(p) for s, p in prices.items()})


def order(symbol: str, bar_ms: int, side: str, qty: str, run_id: str = "live-test",
          leverage: str = "1") -> SubmitOrder:
    from bot.events import Side
    return SubmitOrder(f"{run_id}:{bar_ms}:{symbol}", symbol, bar_ms, Side(side), D(qty), D(leverage))


def posts(stub: BinanceSpotStub) -> list[dict[str, str]]:
    return stub.order_requests("POST")


__all__: Sequence[str] = ["BTC", "CREDS", "D", "ETH", "H", "KEY", "SECRET", "T0", "candle", "make_stub", "marked",
                          "make_usdm_stub", "open_executor", "order", "posts", "settings_for"]
