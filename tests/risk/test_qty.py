"""``rounded_qty`` (Decimal integer division) against the Fraction-based original it replaced: identical
results, to the exponent and the sign of a zero, and the same errors."""

from __future__ import annotations

import math
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.errors import ExecutionError
from bot.execution import paper
from risk.qty import rounded_qty, to_step

D = Decimal
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def reference_rounded_qty(qty: Decimal, step: Decimal) -> Decimal:
    """The implementation before (bot/execution/paper.py at 872bce1), verbatim."""
    def _is_decimal(value: object) -> bool:
        return isinstance(value, Decimal) and value.is_finite()

    if not _is_decimal(step) or step <= 0:
        raise ExecutionError(f"step must be a finite Decimal > 0, got {step!r}")
    if not _is_decimal(qty):
        raise ExecutionError(f"qty must be a finite Decimal, got {qty!r}")
    units = Fraction(qty) / Fraction(step)
    whole = math.floor(units) if units >= 0 else math.ceil(units)
    with localcontext(_EXACT):
        return Decimal(whole) * step


def outcome(fn, qty, step):  # type: ignore[no-untyped-def]
    try:
        return ("ok", str(fn(qty, step)))
    except ExecutionError as exc:
        return ("error", str(exc))


def same(qty, step) -> None:  # type: ignore[no-untyped-def]
    assert outcome(rounded_qty, qty, step) == outcome(reference_rounded_qty, qty, step)


def decimals_from(coefficient: int, exponent: int, negative: bool) -> Decimal:
    return Decimal((int(negative), tuple(int(c) for c in str(coefficient)), exponent))


any_decimal = st.builds(decimals_from, st.integers(0, 10**40), st.integers(-60, 60), st.booleans())
steps = st.one_of(st.sampled_from([D("0.00001"), D("0.001"), D("1E+1"), D("1"), D("0.5"), D("0.03"), D("2.5"),
                                   D("1E-12"), D("1000"), D("7"), D("0.00001000"), D("1E+3"), D("0.3E-2")]),
                  st.builds(decimals_from, st.integers(1, 10**12), st.integers(-20, 20), st.just(False)))


def test_the_paper_module_still_exports_it() -> None:
    assert paper.rounded_qty is rounded_qty and "rounded_qty" in paper.__all__


@settings(max_examples=3000)
@given(any_decimal, steps)
@example(D("-0.000001"), D("0.00001"))          # rounds to a zero: positive, the step's exponent
@example(D("-0"), D("0.001"))
@example(D("0E+10"), D("0.001"))
@example(D("0.00003"), D("0.00001"))            # exactly on a step
@example(D("-0.00003"), D("0.00001"))
@example(D("123"), D("1E+1"))                   # a step with a positive exponent
@example(D("-129.99"), D("1E+1"))
@example(D("1.23456789E+30"), D("0.001"))       # a quotient past 28 digits
@example(D("1E-30"), D("1E-40"))
@example(D("1E+50"), D("1E-50"))
@example(D("-12.5"), D("2.5"))
@example(D("5"), D("7"))
@example(D("-5"), D("7"))
def test_identical_to_the_fraction_version(qty: Decimal, step: Decimal) -> None:
    same(qty, step)


@settings(max_examples=1000)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
       st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=6, allow_nan=False, allow_infinity=False),
       st.sampled_from([D("0.00001"), D("0.001"), D("1E+1"), D("1")]))
def test_identical_on_the_managers_quotients(target: float, price: Decimal, step: Decimal) -> None:
    """What the risk manager rounds: a float exposure, as its repr, over a price (28-digit quotient)."""
    if price > 0:
        same(Decimal(repr(target)) / price, step)


@pytest.mark.parametrize("qty, step", [
    (D("1"), D("0")), (D("1"), D("-0.1")), (D("1"), D("NaN")), (D("1"), D("Infinity")), (D("1"), 0.1),
    (D("1"), 1), (D("NaN"), D("0.1")), (D("Infinity"), D("0.1")), (D("-Infinity"), D("1")), (1.5, D("0.1")),
    (2, D("1")), (None, D("1")), (D("sNaN"), D("1")), (D("NaN"), D("NaN")), (D("NaN"), D("-1")),
])
def test_the_same_errors(qty: object, step: object) -> None:
    with pytest.raises(ExecutionError) as mine:
        rounded_qty(qty, step)  # type: ignore[arg-type]
    with pytest.raises(ExecutionError) as ref:
        reference_rounded_qty(qty, step)  # type: ignore[arg-type]
    assert str(mine.value) == str(ref.value)


def test_to_step_checks_the_quantity() -> None:
    with pytest.raises(ExecutionError, match="qty must be a finite Decimal, got Decimal\\('Infinity'\\)"):
        to_step(D("Infinity"), D("1"))
    assert str(to_step(D("-0.9"), D("0.1"))) == "-0.9" and str(to_step(D("-0.09"), D("0.1"))) == "0.0"
