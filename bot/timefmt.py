"""UTC dates for people: what messages, notifications and the command line show instead of epoch milliseconds.

The trade log and CSV exports keep the exchange's integer milliseconds; only text meant to be read
goes through here.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_minute(ms: int | None, label: bool = True) -> str:
    """``2024-01-03 05:00 UTC`` for a UTC millisecond timestamp (``-`` for None); without ``label`` the bare
    ``2024-01-03 05:00``, for a column, an axis or a line that says UTC once."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC" if label else "%Y-%m-%d %H:%M")


def utc_day(ms: int) -> str:
    """``2024-01-03``: the UTC calendar day of a millisecond timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def utc_span(start_ms: int, end_ms: int) -> str:
    """``2024-01-03 05:00 .. 2024-01-03 07:00 UTC`` (one time when both are equal)."""
    if start_ms == end_ms:
        return utc_minute(start_ms)
    return f"{utc_minute(start_ms, label=False)} .. {utc_minute(end_ms)}"


def format_duration(ms: int) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``; negative (a clock behind the log) reads as ``-12s``."""
    sign, secs = ("-" if ms < 0 else ""), abs(ms) // 1000
    d, rem = divmod(secs, 86_400)
    h, rem = divmod(rem, 3_600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{sign}{d}d {h}h"
    if h:
        return f"{sign}{h}h {m}m"
    if m:
        return f"{sign}{m}m {sec}s"
    return f"{sign}{sec}s"


__all__ = ["utc_minute", "utc_day", "utc_span", "format_duration"]
