"""Immutable events that flow through the engine, one stage to the next.

    Candle ──► Forecast ──► Decision ──► SubmitOrder ──► OrderFilled ──► EquityMarked

Timestamps are integer UTC milliseconds as the exchange gives them, named for
what they are (``open_ms`` is a bar's open time).  Prices and quantities that
touch money are :class:`~decimal.Decimal`; model outputs (μ, σ) are floats.

This module imports nothing outside the standard library so that
``strategies/`` and ``risk/`` can depend on it without pulling in I/O packages.
"""

from __future__ import annotations

import math
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
class Forecast:
    """A predictive distribution of the next bar's log return: mean ``mu``, standard deviation ``sigma``.

    A predictor fills the first five fields (and ``edge`` when it forecasts several steps: the sum of
    their means).  The forecast the decisions use is the model's scored one
    (:class:`strategies.assessed.AssessedPredictor`): ``mu`` = ``skill`` × ``mu_raw``, ``sigma``
    recalibrated from ``sigma_raw``, central 68 %/95 % intervals ``mu ± z68·sigma`` / ``mu ± z95·sigma``,
    and the density a Student-t with ``nu`` degrees of freedom (Gaussian when infinite) with those
    intervals.  A forecast built without the scoring stage keeps the defaults: N(mu, sigma²) taken at
    face value.
    """

    symbol: str
    bar_ms: int
    mu: float
    sigma: float
    model: str
    edge: float = math.nan        # expected log return over the forecast's horizon (NaN: one step, = mu)
    edge_se: float = 0.0          # its standard error (the uncertainty of the mean, not of the return)
    mu_raw: float = math.nan      # the model's own mu, before the skill scale
    sigma_raw: float = math.nan   # the model's own sigma, before calibration
    skill: float = math.nan       # the scale applied: mu = skill × mu_raw (NaN: not scored)
    z68: float = 0.994457883209753
    z95: float = 1.959963984540054
    nu: float = math.inf
    alarm: str = ""               # the skill monitor's alarm while one is active
    state: str = ""               # the scoring stage's state after this bar (JSON): what a restart resumes

    @property
    def expected(self) -> float:
        """The expected log return over the forecast's horizon."""
        return self.mu if math.isnan(self.edge) else self.edge


@dataclass(frozen=True, slots=True)
class Decision:
    """What the decision step chose for one symbol at one bar, refusals included.

    ``action`` is ``"buy"``, ``"sell"`` or ``"none"``; ``reason`` is for the operator.
    """

    symbol: str
    bar_ms: int
    action: str
    target_qty: Decimal
    current_qty: Decimal
    reason: str


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
class RiskStateLogged:
    """The trading state after a bar (ACTIVE / REDUCING / HALTED) and what it rests on."""

    state: str
    since_bar_ms: int | None
    reason: str
    peak_equity: Decimal
    coverage_68: float
    coverage_95: float
    outcomes: int
    entry_bars: tuple[tuple[str, int], ...] = ()   # (symbol, bar its position took its direction)


@dataclass(frozen=True, slots=True)
class VarMeasured:
    """Value at risk and expected shortfall of the target book, positive losses in the quote asset."""

    method: str        # "model", "historical" or "cornish_fisher"
    horizon: int       # bars
    alpha: float
    var: float
    es: float


@dataclass(frozen=True, slots=True)
class Delevered:
    """One deleveraging step: the largest VaR contributor cut, with the binding VaR before and after."""

    step: int
    symbol: str
    exposure_before: float
    exposure_after: float
    var_before: float
    var_after: float
