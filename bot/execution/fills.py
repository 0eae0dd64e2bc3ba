"""The arithmetic of a paper fill, exact: its price, its fee, the margin it takes, where it is liquidated.

Pure functions of Decimals, shared by :class:`~bot.execution.paper.PaperAccount` and its tests.  Every money
sum and product runs in a decimal context with unbounded precision that traps ``Inexact``, so cash and equity
reconcile to the last unit; only the informational quotients (average entry price, margin, liquidation price)
are rounded to 28 significant digits, and the cash flows built from them are exact products again.
"""

from __future__ import annotations

import math
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

from bot.events import Side

# Sums and products of Decimals are exact in this context; anything inexact raises.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# The average entry price and the margin are quotients; they are reported, never summed into cash.
AVERAGE = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
# Liquidation prices round toward the entry (a long's up, a short's down): the loss never exceeds the margin.
_LIQ_LONG = Context(prec=28, rounding=ROUND_CEILING, traps=[InvalidOperation, DivisionByZero, Overflow])
_LIQ_SHORT = Context(prec=28, rounding=ROUND_FLOOR, traps=[InvalidOperation, DivisionByZero, Overflow])
ZERO = Decimal(0)
ONE = Decimal(1)
MAX_LEVERAGE = Decimal(125)
FUNDING_INTERVAL_MS = 28_800_000  # 8 h: Binance USDⓈ-M perpetuals settle funding at 00:00, 08:00, 16:00 UTC


def is_finite_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def fill_price(open_price: Decimal, side: Side, slippage_bps: Decimal) -> Decimal:
    """The price a market order pays at ``open_price``: slippage always against us, exact."""
    with localcontext(EXACT):
        rate = slippage_bps.scaleb(-4)
        return open_price * (1 + rate) if side is Side.BUY else open_price * (1 - rate)


def fee_for(qty: Decimal, price: Decimal, fee_bps: Decimal, fee_step: Decimal) -> Decimal:
    """The fee of a fill: ``qty × price × fee_bps / 10 000`` rounded up to ``fee_step``."""
    with localcontext(EXACT):
        exact = (qty * price * fee_bps).scaleb(-4)
        units = math.ceil(Fraction(exact) / Fraction(fee_step))
        return Decimal(units) * fee_step


def liquidation_price(qty: Decimal, avg_price: Decimal, margin: Decimal, mm_rate: Decimal) -> Decimal | None:
    """Where margin ``M + q (p − E)`` falls to ``mm × |q| × p``; None for a long that cannot get there."""
    if qty == 0:
        return None
    with localcontext(EXACT):
        if qty > 0:
            numerator, denominator = qty * avg_price - margin, qty * (1 - mm_rate)
        else:
            numerator, denominator = margin - qty * avg_price, -qty * (1 + mm_rate)
    if numerator <= 0:
        return None
    with localcontext(_LIQ_LONG if qty > 0 else _LIQ_SHORT):
        return numerator / denominator


def margin_for(qty: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    """Initial margin of ``qty`` at ``price``: notional / leverage (exact at leverage 1)."""
    with localcontext(EXACT):
        notional = qty * price
    if leverage == 1:
        return notional
    with localcontext(AVERAGE):
        return notional / leverage
