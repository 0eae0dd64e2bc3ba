"""The declaration helper every config section uses: a field with its doc and allowed values."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def _key(doc: str, *, lo: Any = None, hi: Any = None, choices: tuple[Any, ...] | None = None,
         lo_open: bool = False, **kw: Any) -> Any:
    """A config field with its documentation and allowed range in its metadata."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open}
    return field(metadata=meta, **kw)
