"""Immutable events that flow through the engine, one stage to the next.

    Candle ──► Forecast ──► Decision ──► SubmitOrder ──► OrderFilled ──► EquityMarked

Timestamps are integer UTC milliseconds as the exchange gives them, named for
what they are (``open_ms`` is a bar's open time).  Prices and quantities that
touch money are :class:`~decimal.Decimal`; model outputs (μ, σ) are floats.

Each event lives with the stage that produces it: :class:`~strategies.events.Forecast` in
``strategies/``, :class:`~risk.events.Decision`, :class:`~risk.events.Delevered` and
:class:`~risk.events.RiskStateLogged` in ``risk/``; this module holds the market and execution events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class Candle:
    """One *closed* OHLCV bar of one symbol (``symbol`` in ccxt form, e.g. ``BTC/USDT``)."""

    symbol: str
    open_ms: int
    close_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """A market order decided at the close of ``bar_ms``; it may fill no earlier than the next open.

    ``leverage`` sets the isolated margin the position's added exposure takes:
    margin = notional / leverage (1 = fully collateralised).  The engine decides
    market orders; an exchange executor may place one as ``"limit"`` at
    ``limit_price`` and says so in the order it returns from ``submit``.
    """

    order_id: str
    symbol: str
    bar_ms: int
    side: Side
    qty: Decimal
    leverage: Decimal = Decimal(1)
    order_type: str = "market"           # "market" or "limit"
    limit_price: Decimal | None = None   # limit orders only


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """A fill of ``order_id`` at the open of bar ``fill_bar_ms`` (the bar after the decision).

    An exchange order may fill in several trades: one event per trade, ``trade_id`` the
    exchange's id (``""`` for a paper fill, which is always whole), and ``final`` true only
    on the event after which the order is completely filled.
    """

    order_id: str
    symbol: str
    decision_bar_ms: int
    fill_bar_ms: int
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    reason: str = "signal"   # "signal", or "liquidation" for a forced close by the margin check
    trade_id: str = ""
    final: bool = True


@dataclass(frozen=True, slots=True)
class FundingPaid:
    """A perpetual-swap funding payment at bar ``bar_ms``: ``amount`` is added to cash
    (negative when the position pays): amount = -qty × mark × rate."""

    symbol: str
    bar_ms: int
    qty: Decimal
    mark: Decimal
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PositionMarked:
    symbol: str
    qty: Decimal
    avg_price: Decimal
    mark: Decimal
    margin: Decimal = Decimal(0)           # isolated margin allocated to the position
    liq_price: Decimal | None = None       # where the margin check liquidates it (None: it cannot be)


@dataclass(frozen=True, slots=True)
class EquityMarked:
    """The account marked at the close of ``bar_ms``: equity = cash + Σ qty × mark."""

    bar_ms: int
    cash: Decimal
    equity: Decimal
    positions: tuple[PositionMarked, ...]


@dataclass(frozen=True, slots=True)
class VarMeasured:
    """Value at risk and expected shortfall of the target book, positive losses in the quote asset."""

    method: str        # "model", "historical" or "cornish_fisher"
    horizon: int       # bars
    alpha: float
    var: float
    es: float
