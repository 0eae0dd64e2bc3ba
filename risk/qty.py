"""Order quantities rounded toward zero to a whole number of the quantity step, exactly.

``rounded_qty`` used to divide two ``Fraction``\\ s; Decimal's own integer division is exact too (the
quotient is truncated toward zero, never rounded, and it runs in a context whose precision no quotient
can exceed), and some twenty times faster.  The result is ``whole × step``: the step's exponent, and
a zero is always positive (``0E-5``, never ``-0E-5``), as it was with the fractions.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

from risk.errors import ExecutionError

# Integer quotients and products of Decimals are exact in this context; anything inexact raises.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_ZERO = Decimal(0)


def to_step(qty: Decimal, step: Decimal) -> Decimal:
    """``rounded_qty`` for a ``step`` already known to be a finite Decimal > 0 (``qty`` is still checked)."""
    if not (isinstance(qty, Decimal) and qty.is_finite()):
        raise ExecutionError(f"qty must be a finite Decimal, got {qty!r}")
    whole = _EXACT.divide_int(qty, step)          # truncated toward zero, exponent 0
    return _EXACT.multiply(whole if whole else _ZERO, step)


def rounded_qty(qty: Decimal, step: Decimal) -> Decimal:
    """Round ``qty`` toward zero to a whole number of ``step`` (never trade more than asked)."""
    if not (isinstance(step, Decimal) and step.is_finite()) or step <= 0:
        raise ExecutionError(f"step must be a finite Decimal > 0, got {step!r}")
    return to_step(qty, step)


__all__ = ["rounded_qty", "to_step"]
