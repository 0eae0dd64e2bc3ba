"""The run's model versions as text lines (``bot status``, ``bot report``) and as JSON rows (the dashboard API).

One row per version: what it is, why it exists (the config, a schedule, an alarm, a walk-forward refit),
what it trained on, how it scored against the serving model on the held-out bars, whether the gate took it
and the bars it served.  A swap is the first bar of a version after the first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bot.store.models import ModelVersion
from bot.timefmt import utc_minute


def _scores(m: ModelVersion) -> dict[str, Any]:
    try:
        out = json.loads(m.scores) if m.scores else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def hm(ms: int | None) -> str:
    """A time in the versions table, whose heading says UTC once."""
    return utc_minute(ms, label=False)


def held_out(m: ModelVersion) -> str:
    """``NLL cand vs serving`` on the held-out bars, or what a walk-forward refit reported."""
    s = _scores(m)
    if "candidate" in s and "serving" in s:
        c, v = s["candidate"], s["serving"]
        return (f"NLL {c.get('nll', float('nan')):.4f} vs {v.get('nll', float('nan')):.4f}, "
                f"cal.err {c.get('calibration_error', float('nan')):.3f} vs "
                f"{v.get('calibration_error', float('nan')):.3f}, skill {c.get('skill', 0.0):.2f} vs "
                f"{v.get('skill', 0.0):.2f}")
    if s.get("best_val_nll") is not None:
        return f"best validation NLL {s['best_val_nll']:.4f}"
    return "-"


def swaps(versions: Sequence[ModelVersion]) -> list[tuple[int, int, int]]:
    """``(bar_ms, from_version, to_version)`` of each swap, in order."""
    served = sorted((m.first_bar_ms, m.version) for m in versions if m.first_bar_ms is not None)
    return [(bar, a, b) for (_, a), (bar, b) in zip(served, served[1:])]


def model_lines(versions: Sequence[ModelVersion]) -> list[str]:
    """The versions table and the swaps, for a plain-text page ([] for a log without versions)."""
    if not versions:
        return []
    serving = next((m for m in versions if m.status == "serving"), None)
    head = f"Models      {len(versions)} version(s)" + (f"; serving v{serving.version} ({serving.kind})"
                                                           if serving else "")
    lines = [head]
    for m in versions:
        trained = (f"trained {hm(m.train_from_ms)}..{hm(m.train_to_ms)}" if m.train_from_ms is not None
                   else "as configured")
        seconds = f" in {m.train_seconds:.1f} s on {m.device}" if m.train_seconds is not None else ""
        served = (f"served {hm(m.first_bar_ms)}..{hm(m.last_bar_ms)}" if m.first_bar_ms is not None
                  else f"due {hm(m.due_bar_ms)}" if m.due_bar_ms is not None else "never served")
        lines.append(f"  v{m.version:<3} {m.kind:<12} {m.status:<9} {m.trigger:<12} {trained}{seconds}; {served}")
        # An accepted version's reason repeats its scores; a rejection's or failure's says which test failed.
        why = m.reason if m.reason and not (m.scores and m.status in ("accepted", "serving", "retired")) else ""
        if m.scores or why:
            lines.append(f"       held-out: {held_out(m)}" + (f"; {m.status}: {why}" if why else ""))
    for bar, a, b in swaps(versions):
        lines.append(f"  swap at {utc_minute(bar)}: v{a} -> v{b}")
    return lines + [""]


def model_rows(versions: Sequence[ModelVersion]) -> list[dict[str, Any]]:
    """The versions as JSON objects (``scores`` and ``settings`` parsed)."""
    out = []
    for m in versions:
        row = asdict(m)
        for key in ("scores", "settings"):
            try:
                row[key] = json.loads(row[key]) if row[key] else None
            except ValueError:
                pass
        out.append(row)
    return out
