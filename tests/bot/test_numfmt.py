"""Display rounding: money to cents, prices and quantities to six significant digits, μ and σ in bps."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.numfmt import bps, money, sig


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("26602.94000001"), "26,602.9"), (Decimal("0.3495741234"), "0.349574"), (Decimal("12335.26256"), "12,335.3"),
    (Decimal("-13525.54999"), "-13,525.5"), (1234567.89, "1,234,568"), (Decimal("0.17327"), "0.17327"),
    (Decimal("100000"), "100,000"), (Decimal("2.5000"), "2.5"), (0.0, "0"), (-0.0, "0"), (Decimal("1E-9"), "0.000000001"),
    (None, "-"), (math.nan, "-"), (math.inf, "-")])
def test_sig(value: Decimal | float | None, text: str) -> None:
    assert sig(value) == text


def test_money_and_bps() -> None:
    assert money(Decimal("-1046.735231841027550")) == "-1,046.74" and money(None) == "-" and money(math.nan) == "-"
    assert bps(0.0012346) == "+12.35 bps" and bps(0.005, sign=False) == "50.00 bps" and bps(None) == "-"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).filter(lambda v: abs(v) > 1e-12))
def test_sig_is_within_half_a_unit_of_the_sixth_digit(v: float) -> None:
    text = sig(v)
    assert "e" not in text.lower()
    shown = float(text.replace(",", ""))
    assert abs(shown - v) <= 0.5 * 10 ** (math.floor(math.log10(abs(v))) - 5) * (1 + 1e-9)
