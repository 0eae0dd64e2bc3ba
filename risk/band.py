"""The no-trade band: what being long, flat or short is worth, given costs and how the signal behaves.

Entering a position pays one fill now and one at its exit; holding it pays nothing.  So the first
bar's expected return is not the whole value of a position: while it is held, later bars whose
signal still points its way earn without a new fill, and leaving a position that the signal will
want again soon pays twice.  How much that is worth depends on the signal's distribution, which
the bot has seen: the recent effective edges E of the symbol (μ after the skill scale).

Model: each bar a signal m is drawn from the recent edges, symmetrised (their empirical distribution
with both signs, taken as independent from bar to bar — persistence beyond one bar is what
multi-step forecasts carry in their own E); the position x ∈ {−1, 0, +1} earns x·m over the bar and moving
from x to x′ costs c·|x′ − x|.  The long-run average reward g and the relative values h(x) solve the Bellman equation

    g + h(x) = E_m [ max_x′ ( x′·m − c·|x′ − x| + h(x′) ) ],      h(0) = 0,

found by relative value iteration (Puterman, Markov Decision Processes, §8.5.5).  The decision at a
bar with signal m in position x is the x′ that maximises x′·m − c·|x′ − x| + h(x′): flat → long
when m > c + h(0) − h(+1), and so on; the no-trade band is where staying wins.

With no history (or a signal that is always 0) h(±1) = −c: a position is worth only the exit fee it
will cost, and the rule is the one-bar rule "enter when m > 2c".  Each expectation of the piecewise-
linear maximum is computed exactly from the sorted samples and their prefix sums (two binary
searches per state), so an iteration costs microseconds however many samples there are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

log = logging.getLogger(__name__)

Values = tuple[float, float, float]      # h(−1), h(0), h(+1)

MAX_ITERATIONS = 300
TOLERANCE = 1e-10     # log-return units: far below any edge a decision compares


def static_values(cost: float) -> Values:
    """The values with no information about future signals: a position is worth its exit fee."""
    return (-cost, 0.0, -cost)


def band_values(samples: Sequence[float], cost: float) -> Values:
    """Relative values h(−1), h(0) = 0, h(+1) of the three positions for signals like ``samples``.

    The samples are taken with both signs (each m and −m): their sizes say how often a signal worth
    trading comes along, but a drift in their sign (a trending market seen by a momentum model) is not
    a forecast of the next bars' direction, and would make one side look free to enter."""
    if not samples:
        return static_values(cost)
    m = np.array(samples, dtype=np.float64)
    sorted_m = np.sort(np.concatenate((m, -m)))
    hs, h0, hl = _kernel()(sorted_m, float(cost), MAX_ITERATIONS, TOLERANCE)
    return hs, h0, hl


def _iterate(sorted_m: np.ndarray, cost: float, max_iterations: int, tolerance: float) -> Values:
    """The relative value iteration over the sorted signed samples, compiled by numba (:func:`_kernel`).

    The mean of the three states' envelopes max(−m + c, b, m + a) per iteration, written out: the same
    operations in the same order as the plain-Python original kept in ``tests/risk/test_band_reference.py``
    (so the same bits: numba compiles IEEE arithmetic without reassociating or fusing it, and that test holds
    it to the original), the binary searches as ``searchsorted`` (left = ``bisect_left``, right =
    ``bisect_right``).  It runs for every symbol whose recent
    edges hold a signal, at every bar, and with signals small against costs it converges slowly enough to run
    all ``max_iterations``: ~1 ms a call in Python, the largest single cost of a backtest's bar.  h0 is 0.0 at
    every iteration, so the flat line's intercepts are constants."""
    n = sorted_m.shape[0]
    prefix = np.empty(n + 1)
    prefix[0] = 0.0
    prefix[1] = sorted_m[0]                  # as itertools.accumulate: the first sample itself, then sums
    for k in range(1, n):
        prefix[k + 1] = prefix[k] + sorted_m[k]
    total = prefix[n]
    hs, h0, hl = -cost, 0.0, -cost          # static_values(cost)
    cost2 = 2 * cost
    b_sl = h0 - cost          # b of the short and the long state's envelopes
    b_f = h0                  # b of the flat state's
    for _ in range(max_iterations):
        # T h(x) for x = −1, 0, +1: the lines' intercepts are h(x′) − c·|x′ − x|.
        a = hl - cost2        # short: a = hl − 2c, b = h0 − c, c = hs
        c = hs
        lo = c - b_sl
        hi = b_sl - a
        if lo < hi:
            i = np.searchsorted(sorted_m, lo, side="left")
            j = np.searchsorted(sorted_m, hi, side="right")
            t_short = ((-prefix[i] + c * i) + b_sl * (j - i) + ((total - prefix[j]) + a * (n - j))) / n
        else:
            i = np.searchsorted(sorted_m, (c - a) / 2.0, side="left")
            t_short = ((-prefix[i] + c * i) + 0.0 + ((total - prefix[i]) + a * (n - i))) / n
        a = hl - cost         # flat: a = hl − c, b = h0, c = hs − c
        c = hs - cost
        lo = c - b_f
        hi = b_f - a
        if lo < hi:
            i = np.searchsorted(sorted_m, lo, side="left")
            j = np.searchsorted(sorted_m, hi, side="right")
            t_flat = ((-prefix[i] + c * i) + b_f * (j - i) + ((total - prefix[j]) + a * (n - j))) / n
        else:
            i = np.searchsorted(sorted_m, (c - a) / 2.0, side="left")
            t_flat = ((-prefix[i] + c * i) + 0.0 + ((total - prefix[i]) + a * (n - i))) / n
        a = hl                # long: a = hl, b = h0 − c, c = hs − 2c
        c = hs - cost2
        lo = c - b_sl
        hi = b_sl - a
        if lo < hi:
            i = np.searchsorted(sorted_m, lo, side="left")
            j = np.searchsorted(sorted_m, hi, side="right")
            t_long = ((-prefix[i] + c * i) + b_sl * (j - i) + ((total - prefix[j]) + a * (n - j))) / n
        else:
            i = np.searchsorted(sorted_m, (c - a) / 2.0, side="left")
            t_long = ((-prefix[i] + c * i) + 0.0 + ((total - prefix[i]) + a * (n - i))) / n
        new_s = t_short - t_flat
        new_l = t_long - t_flat
        if abs(new_s - hs) < tolerance and abs(new_l - hl) < tolerance:
            hs, h0, hl = new_s, 0.0, new_l
            break
        hs, h0, hl = new_s, 0.0, new_l
    return hs, h0, hl


def prepare_band() -> None:
    """Load (or compile) the band's code now instead of at its first use."""
    _kernel()


@cache
def _kernel() -> Callable[[np.ndarray, float, int, float], Values]:
    """:func:`_iterate` compiled, at its first use (numba's import and a cached compile cost ~0.3 s, a fresh
    compile ~1 s: only a process that meets a signal pays them).  The compiled code is cached on disk:
    ``NUMBA_CACHE_DIR`` if set, else beside this module, else a user cache folder; where none is writable (a
    read-only install under systemd's ProtectSystem/ProtectHome without NUMBA_CACHE_DIR) it is compiled
    once per process instead of failing."""
    from numba import njit

    try:
        return njit(cache=True, nogil=True)(_iterate)
    except RuntimeError as exc:     # numba: "cannot cache function ...: no locator available"
        log.warning("no writable cache folder for the no-trade band's compiled code (%s): compiled in "
                    "this process; set NUMBA_CACHE_DIR to a writable folder to keep it", exc)
        return njit(nogil=True)(_iterate)


def best_position(current: int, m_long: float, m_short: float, m_hold: float, cost: float,
                  h: Values) -> tuple[int, dict[int, float]]:
    """The position that maximises x′·m − c·|x′ − current| + h(x′), and each position's value.

    ``m_long``/``m_short`` are the signal as a new long/short would be judged (the edge less or plus the
    entry margin in standard errors); ``m_hold`` as the current position is (its exit margin).  A tie
    keeps the current position: no fill without a strict gain.
    """
    value = {}
    for x in (-1, 0, 1):
        if x == 0:
            m_x = 0.0
        elif x == current:
            m_x = m_hold
        else:
            m_x = m_long if x > 0 else m_short
        value[x] = x * m_x - cost * abs(x - current) + h[x + 1]
    best = current
    for x in (0, 1, -1):
        if value[x] > value[best]:
            best = x
    return best, value
