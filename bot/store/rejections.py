"""Rejected input counted by source and reason, written to the trade log as it happens.

One :class:`RejectionTally` per daemon session holds the engine's own counts
(duplicate, out-of-order, conflicting and implausible klines) and follows the
counters the other parts keep (the websocket feed's malformed frames, the REST
source's bad rows, the exchange executor's refused orders).  The engine puts
:meth:`RejectionTally.changed` into each bar's record, so the counts are
committed in the bar's own transaction and a ``kill -9`` loses at most those
of the bar in progress; the daemon writes the totals once more at a clean stop.

Sources are those of the ``rejections`` table: ``websocket``, ``rest`` and ``exchange``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RejectionCount:
    """One row of the ``rejections`` table: this session's count of one reason from one source."""

    session_no: int
    source: str
    reason: str
    count: int
    last_ms: int        # wall clock when the count last grew
    example: str        # the latest rejection's full reason


class RejectionTally:
    """This session's rejection counts: its own, and those of the counters it follows."""

    def __init__(self, session_no: int, clock: Callable[[], float] = time.time) -> None:
        self.session_no = session_no
        self._clock = clock
        self._own: dict[str, Counter[str]] = {}
        self._own_examples: dict[str, dict[str, str]] = {}
        self._followed: list[tuple[str, Mapping[str, int], Mapping[str, str]]] = []
        self._written: dict[tuple[str, str], RejectionCount] = {}

    def count(self, source: str, reason: str, example: str) -> int:
        """Count one rejection of ``reason`` from ``source``; return the count so far."""
        counts = self._own.setdefault(source, Counter())
        counts[reason] += 1
        self._own_examples.setdefault(source, {})[reason] = example[:500]
        return counts[reason]

    def follow(self, source: str, counts: Mapping[str, int], examples: Mapping[str, str]) -> None:
        """Include another part's live counters (read at each snapshot, never copied)."""
        self._followed.append((source, counts, examples))

    def totals(self) -> dict[tuple[str, str], tuple[int, str]]:
        """``{(source, reason): (count, latest example)}`` over every counter."""
        out: dict[tuple[str, str], tuple[int, str]] = {}
        parts = [*((s, c, self._own_examples.get(s, {})) for s, c in self._own.items()), *self._followed]
        for source, counts, examples in parts:
            for reason, n in counts.items():
                if n:
                    before = out.get((source, reason), (0, ""))[0]
                    out[(source, reason)] = (before + n, examples.get(reason, reason)[:500])
        return out

    def of(self, source: str, reason: str) -> int:
        """The count of one reason so far."""
        return self.totals().get((source, reason), (0, ""))[0]

    def changed(self) -> tuple[RejectionCount, ...]:
        """Every row whose count grew since the last call (each with its whole session count)."""
        now_ms = int(self._clock() * 1000)
        out = []
        for (source, reason), (n, example) in sorted(self.totals().items()):
            last = self._written.get((source, reason))
            if last is None or last.count != n:
                row = RejectionCount(self.session_no, source, reason, n, now_ms, example)
                self._written[(source, reason)] = row
                out.append(row)
        return tuple(out)

    def rows(self) -> tuple[RejectionCount, ...]:
        """Every row, changed or not (what a clean stop writes)."""
        self.changed()
        return tuple(self._written[k] for k in sorted(self._written))


__all__ = ["RejectionCount", "RejectionTally"]
