"""The exchange executor against a Binance REST stub on loopback: ccxt signs and parses for real."""

from __future__ import annotations

import asyncio
import time
from decimal import ROUND_DOWN
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from stubkit import BTC, CREDS, ETH, T0, D, H, candle, make_stub, marked, open_executor, order, posts, settings_for

from bot.errors import ExecutionError
from bot.events import Side
from bot.execution import Executor
from bot.execution.live import make_trading_exchange
from bot.execution.orders import CLIENT_ID_RE, bar_of_client_id, client_order_id, rounded_order

# --- client order ids -------------------------------------------------------------------------------

@given(run_id=st.text(min_size=1, max_size=80), bar_s=st.integers(0, 10**11),
       market_id=st.text(min_size=1, max_size=40))
def test_client_order_id_is_valid_for_binance_and_deterministic(run_id: str, bar_s: int, market_id: str) -> None:
    cid = client_order_id(run_id, bar_s * 1000, market_id)
    assert CLIENT_ID_RE.match(cid) and len(cid) <= 36
    assert cid == client_order_id(run_id, bar_s * 1000, market_id)
    assert bar_of_client_id(cid) == bar_s * 1000
    assert cid != client_order_id(run_id, (bar_s + 60) * 1000, market_id)


def test_client_order_id_names_the_market_when_it_fits() -> None:
    cid = client_order_id("paper", T0, "BTCUSDT")
    assert cid.endswith("-BTCUSDT") and cid != client_order_id("other", T0, "BTCUSDT")


# --- rounding and limits, before anything is sent --------------------------------------------------

def test_quantities_are_truncated_to_the_lot_step_or_refused_with_the_limit() -> None:
    async def loaded() -> Any:
        async with make_stub() as stub:
            exchange = make_trading_exchange(settings_for(stub).exchange, CREDS)
            try:
                await exchange.load_markets()
            finally:
                await exchange.close()
            return exchange

    exchange = asyncio.run(loaded())   # markets stay in memory; rounding is pure

    @hsettings(max_examples=300, deadline=None)
    @given(qty=st.decimals(min_value=D("0.000001"), max_value=D("0.2"), places=9),
           limit=st.none() | st.decimals(min_value=D("1000"), max_value=D("50000"), places=4))
    def check(qty: D, limit: D | None) -> None:
        try:
            amount, price = rounded_order(exchange, BTC, qty, D("40000"), limit)
        except ExecutionError as exc:
            truncated = (qty // D("0.00001")) * D("0.00001")
            notional = truncated * (limit.quantize(D("0.01"), rounding=ROUND_DOWN) if limit else D("40000"))
            assert BTC in str(exc)
            assert truncated == 0 or notional < 5, str(exc)
            assert "rounds to 0" in str(exc) or "minimum notional 5" in str(exc)
        else:
            assert amount == (qty // D("0.00001")) * D("0.00001") and 0 < amount <= qty
            assert price is None or (price % D("0.01") == 0 and abs(price - limit) < D("0.01"))
            assert amount * (price or D("40000")) >= 5

    check()


@pytest.mark.asyncio
async def test_min_notional_error_names_symbol_value_and_limit_and_sends_nothing() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            with pytest.raises(ExecutionError, match=r"BTC/USDT: notional 4\.0000 \(0\.0001 x 40000\) is below the market's minimum "
                                                     r"notional 5"):
                await ex.submit(order(BTC, T0, "buy", "0.0001"))
            with pytest.raises(ExecutionError, match=r"ETH/USDT: quantity 0\.00004 rounds to 0"):
                await ex.submit(order(ETH, T0, "buy", "0.00004"))
            assert posts(stub) == [] and ex.rejections
        finally:
            await ex.aclose()


# --- market orders, partial fills ------------------------------------------------------------------

@pytest.mark.asyncio
async def test_market_order_fills_in_several_trades_one_fill_each_and_the_book_matches_the_exchange() -> None:
    async with make_stub(fill_parts=3) as stub:
        ex = await open_executor(stub)
        try:
            assert isinstance(ex, Executor)
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            placed = await ex.submit(order(BTC, T0, "buy", "0.03"))
            assert placed.order_type == "market" and len(ex.open_orders()) == 1
            fills = await ex.on_bar([candle(BTC, T0 + H, "40000"), candle(ETH, T0 + H, "2000")])
            assert [f.qty + f.fee / f.price for f in fills] == [D("0.01")] * 3
            assert [f.final for f in fills] == [False, False, True]
            assert len({f.trade_id for f in fills}) == 3 and all(f.fill_bar_ms == T0 + H for f in fills)
            assert ex.position(BTC) == stub.balance("BTC") == D("0.03") - D("0.00003")
            assert ex.cash == stub.balance("USDT") == D("10000") - D("1200")
            assert ex.open_orders() == () and stub.placements[posts(stub)[0]["newClientOrderId"]] == 1
            # Cash flows of the logged fills equal the exchange's balance changes exactly.
            assert sum(-f.qty * f.price - f.fee for f in fills) == D("-1200")
        finally:
            await ex.aclose()


# --- refusals ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_insufficient_balance_and_filter_failure_are_refusals_counted_by_reason() -> None:
    async with make_stub(usdt="100") as stub:
        ex = await open_executor(stub)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            with pytest.raises(ExecutionError, match="InsufficientFunds.*insufficient balance"):
                await ex.submit(order(BTC, T0, "buy", "0.01"))
            stub.markets["ETHUSDT"].step = D("0.01")   # the exchange's filter changed since load_markets
            with pytest.raises(ExecutionError, match="Filter failure: LOT_SIZE"):
                await ex.submit(order(ETH, T0, "buy", "0.0101"))
            assert ex.rejections["InsufficientFunds"] == 1 and sum(ex.rejections.values()) == 2
            assert len(posts(stub)) == 2 and not stub.placements and ex.open_orders() == ()
        finally:
            await ex.aclose()


# --- rate limits and bans ---------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_429_with_retry_after_is_honoured_and_the_order_placed_once() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            stub.fail_next("POST", "/api/v3/order", status=429, retry_after=1)
            started = time.monotonic()
            await ex.submit(order(BTC, T0, "buy", "0.01"))
            assert time.monotonic() - started >= 1.0
            assert len(posts(stub)) == 2 and list(stub.placements.values()) == [1]
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_418_ban_longer_than_allowed_refuses_without_waiting() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            stub.fail_next("POST", "/api/v3/order", status=418, retry_after=3600,
                           msg="Way too many requests; IP(127.0.0.1) banned until 1704070800000.")
            started = time.monotonic()
            with pytest.raises(ExecutionError, match="DDoSProtection.*banned"):
                await ex.submit(order(BTC, T0, "buy", "0.01"))
            assert time.monotonic() - started < 1.0 and not stub.placements
        finally:
            await ex.aclose()


# --- timeouts never double an order -----------------------------------------------------------------

@pytest.mark.asyncio
async def test_timeout_after_the_exchange_took_the_order_is_looked_up_not_repeated() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub, timeout_s=0.3)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            stub.fail_next("POST", "/api/v3/order", delay_s=1.0)   # processed, answered after the client gave up
            await ex.submit(order(BTC, T0, "buy", "0.01"))
            cid = client_order_id("live-test", T0, "BTCUSDT")
            assert len(posts(stub)) == 1 and stub.placements[cid] == 1
            fills = await ex.on_bar([candle(BTC, T0 + H, "40000")])
            assert len(fills) == 1 and fills[0].final and ex.position(BTC) == stub.balance("BTC")
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_resubmitting_a_filled_order_after_a_restart_adopts_it() -> None:
    """Binance accepts a client id again once its order is closed: only the lookup prevents a double."""
    async with make_stub() as stub:
        first = await open_executor(stub)
        marked(first, T0, {BTC: "40000", ETH: "2000"})
        await first.submit(order(BTC, T0, "buy", "0.01"))
        await first.aclose()
        again = await open_executor(stub)   # as if the bar's commit was lost: nothing in the trade log
        try:
            marked(again, T0, {BTC: "40000", ETH: "2000"})
            await again.submit(order(BTC, T0, "buy", "0.01"))
            assert len(posts(stub)) == 1 and sum(stub.placements.values()) == 1
        finally:
            await again.aclose()


# --- limit orders: rest, partial fill, TTL cancel, cancel on shutdown ------------------------------

@pytest.mark.asyncio
async def test_limit_order_partially_filled_then_cancelled_by_its_ttl() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub, order_type="limit", limit_offset_bps="10", limit_ttl_bars=2)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            placed = await ex.submit(order(BTC, T0, "buy", "0.02"))
            assert placed.order_type == "limit" and placed.limit_price == D("39960.00")
            assert posts(stub)[0]["timeInForce"] == "GTC" and stub.balance("USDT") == D("10000")
            cid = posts(stub)[0]["newClientOrderId"]
            assert await ex.on_bar([candle(BTC, T0 + H, "40000")]) == []
            stub.fill(cid, D("0.005"))
            assert ex.expiry_reason(placed, T0 + H, H) is None
            part = await ex.on_bar([candle(BTC, T0 + 2 * H, "40000")])
            assert [(f.qty + f.fee / f.price, f.final) for f in part] == [(D("0.005"), False)]
            assert ex.expiry_reason(placed, T0 + 2 * H, H) is None
            why = ex.expiry_reason(placed, T0 + 3 * H, H)
            assert why is not None and "2 bar(s)" in why
            assert ex.cancel_open(why, BTC) == [(placed.order_id, why)]
            assert await ex.on_bar([candle(BTC, T0 + 3 * H, "40000")]) == []
            assert stub.orders[min(stub.orders)].status == "CANCELED" and ex.open_orders() == ()
            assert stub.locked["USDT"] == 0 and ex.cash == stub.balance("USDT")
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_cancel_on_shutdown_cancels_open_orders_on_the_exchange() -> None:
    async with make_stub() as stub:
        for cancel in (True, False):
            ex = await open_executor(stub, run_id=f"shut-{cancel}", order_type="limit", cancel_on_shutdown=cancel)
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            await ex.submit(order(ETH, T0, "sell" if False else "buy", "0.5", run_id=f"shut-{cancel}"))
            await ex.aclose()
        statuses = [o.status for o in sorted(stub.orders.values(), key=lambda o: o.order_id)]
        assert statuses == ["CANCELED", "NEW"]


@pytest.mark.asyncio
async def test_order_cancelled_by_hand_on_the_exchange_is_reported_as_expired() -> None:
    async with make_stub() as stub:
        ex = await open_executor(stub, order_type="limit", limit_ttl_bars=5)
        try:
            marked(ex, T0, {BTC: "40000", ETH: "2000"})
            placed = await ex.submit(order(BTC, T0, "buy", "0.01"))
            stub.cancel_all()
            assert await ex.on_bar([candle(BTC, T0 + H, "40000")]) == []
            why = ex.expiry_reason(placed, T0 + 2 * H, H)   # long before its TTL of 5 bars
            assert why is not None and "status canceled" in why
        finally:
            await ex.aclose()


@pytest.mark.asyncio
async def test_wrong_secret_is_an_authentication_error_from_the_signature_check() -> None:
    from stubkit import settings_for

    from bot.config.secrets import Credentials
    from bot.execution.live import open_exchange_executor

    async with make_stub() as stub:
        with pytest.raises(Exception, match="Signature for this request is not valid"):
            await open_exchange_executor(settings_for(stub), Credentials("stub-key-0123456789", "wrong"), None,
                                         live_flag=True)


def test_sides() -> None:
    assert Side("buy") is Side.BUY
