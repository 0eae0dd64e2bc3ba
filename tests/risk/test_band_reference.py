"""The no-trade band's compiled iteration (numba) gives the bits of the original plain-Python one, built on
``_envelope_mean``: the same decisions and the same trade log, to the last bit."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.band import MAX_ITERATIONS, TOLERANCE, Values, band_values, static_values


def _envelope_mean(sorted_m: Sequence[float], prefix: Sequence[float], a: float, b: float, c: float) -> float:
    """The original's expectation: mean over the samples of max(−m + c, b, m + a) (short, flat, long)."""
    n = len(sorted_m)
    total = prefix[-1]
    if c - b < b - a:          # a flat region exists: short below c − b, long above b − a
        lo, hi = c - b, b - a
        i = bisect_left(sorted_m, lo)           # samples < lo: short
        j = bisect_right(sorted_m, hi)          # samples > hi: long
        s_short = -prefix[i] + c * i
        s_flat = b * (j - i)
        s_long = (total - prefix[j]) + a * (n - j)
    else:                      # long or short everywhere, split where the two lines cross
        mid = (c - a) / 2.0
        i = bisect_left(sorted_m, mid)
        s_short = -prefix[i] + c * i
        s_flat = 0.0
        s_long = (total - prefix[i]) + a * (n - i)
    return (s_short + s_flat + s_long) / n


def reference_band_values(samples: list[float], cost: float) -> Values:
    """band_values as it was written before the throughput work (three _envelope_mean calls per iteration)."""
    if not samples:
        return static_values(cost)
    sorted_m = sorted([*samples, *(-m for m in samples)])
    prefix = [0.0, *accumulate(sorted_m)]
    hs, h0, hl = static_values(cost)
    for _ in range(MAX_ITERATIONS):
        t_short = _envelope_mean(sorted_m, prefix, hl - 2 * cost, h0 - cost, hs)
        t_flat = _envelope_mean(sorted_m, prefix, hl - cost, h0, hs - cost)
        t_long = _envelope_mean(sorted_m, prefix, hl, h0 - cost, hs - 2 * cost)
        new = (t_short - t_flat, 0.0, t_long - t_flat)
        if abs(new[0] - hs) < TOLERANCE and abs(new[2] - hl) < TOLERANCE:
            hs, h0, hl = new
            break
        hs, h0, hl = new
    return hs, h0, hl


def bits(v: Values) -> list[tuple[float, float]]:
    return [(x, math.copysign(1.0, x)) for x in v]


edges = st.one_of(st.just(0.0), st.just(-0.0), st.floats(-0.02, 0.02), st.floats(-1e-4, 1e-4))


@settings(max_examples=400, deadline=None)
@given(st.lists(edges, max_size=800), st.sampled_from([0.0, 0.0005, 0.0011, 0.002]) | st.floats(0.0, 0.01))
def test_band_values_are_the_original_iterations_bits(samples: list[float], cost: float) -> None:
    assert bits(band_values(samples, cost)) == bits(reference_band_values(samples, cost))


def test_the_band_is_compiled_without_a_disk_cache_where_no_cache_folder_is_writable(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A read-only install under systemd's ProtectSystem/ProtectHome: numba finds no cache folder and refuses
    ``cache=True`` at decoration; the band is then compiled in the process, with the same bits."""
    import numba

    from risk import band

    real_njit = numba.njit

    def njit(*args: object, **kw: object) -> object:
        if kw.get("cache"):
            raise RuntimeError("cannot cache function '_iterate': no locator available for file 'band.py'")
        return real_njit(*args, **kw)

    monkeypatch.setattr(numba, "njit", njit)
    band._kernel.cache_clear()
    samples, cost = [0.0004 * ((-1) ** k) * (k % 7) for k in range(300)], 0.0011
    with caplog.at_level("WARNING", logger="risk.band"):
        got = band_values(samples, cost)
    band._kernel.cache_clear()      # the next user compiles (or loads) it with its disk cache again
    assert bits(got) == bits(reference_band_values(samples, cost))
    assert "set NUMBA_CACHE_DIR" in caplog.text
