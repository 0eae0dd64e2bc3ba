"""The gate's worth: the signals the bot refused, and what they would have earned.

A refused signal is a decision with action 'none' and a flat target (the symbol stayed flat) made on a
forecast with μ ≠ 0.  Had the bot followed μ's direction for one bar with the whole equity E_t:

    would_t = sign(μ_t) × (close_{t+1} / close_t − 1) × E_t          (quote asset)
    net_t   = would_t − cost_bps / 10⁴ × E_t                            (a round trip's fees and slippage)

Refusals are grouped by why (:func:`refusal_kind` reads the decision's reason: the gate's
``gated`` (σ above the cap) and ``weak`` (|μ|/σ below entry), or the risk layer's HALTED, REDUCING,
VaR, and so on).  The signals the bot took (a nonzero target) are scored the same way for
comparison.  A gate earns its keep when what it refused would have lost money net of costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TAKEN = "taken (nonzero target)"


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    bar_ms: int
    symbol: str
    action: str                 # 'buy', 'sell' or 'none'
    target_flat: bool           # target quantity 0
    reason: str
    mu: float
    next_return: float          # close_{t+1}/close_t − 1
    equity: float               # account equity at the decision's mark


@dataclass(frozen=True, slots=True)
class GateRow:
    kind: str
    signals: int
    hit_rate: float             # share where μ's direction made money
    mean_bps: float             # mean sign(μ) × next return, basis points
    would_earn: float           # Σ would_t, quote asset
    net_of_costs: float         # Σ net_t


def refusal_kind(reason: str) -> str:
    """The reason a decision stayed flat, in a word or two."""
    text = reason
    if text.startswith("late"):
        text = text.split("): ", 1)[-1]
    for marker, kind in (("HALTED", "halted"), ("REDUCING", "reducing"), ("VaR unavailable", "VaR unavailable"),
                         ("VaR budget", "VaR budget"), ("no new exposure", "blocked")):
        if marker in text:
            return kind
    head = text.split(":", 1)[0].strip()
    if head.startswith("unusable forecast"):
        return "unusable forecast"
    return head or "unknown"


def gate_worth(outcomes: Iterable[DecisionOutcome], cost_bps: float = 0.0) -> tuple[GateRow, ...]:
    """One row per refusal kind (most frequent first), then one for the signals taken."""
    groups: dict[str, list[DecisionOutcome]] = {}
    for o in outcomes:
        if not (math.isfinite(o.mu) and math.isfinite(o.next_return)) or o.mu == 0:
            continue
        if o.target_flat and o.action == "none":
            groups.setdefault(refusal_kind(o.reason), []).append(o)
        elif not o.target_flat:
            groups.setdefault(TAKEN, []).append(o)
    rows = [_row(kind, items, cost_bps) for kind, items in groups.items()]
    refused = sorted((r for r in rows if r.kind != TAKEN), key=lambda r: (-r.signals, r.kind))
    return tuple(refused + [r for r in rows if r.kind == TAKEN])


def _row(kind: str, items: list[DecisionOutcome], cost_bps: float) -> GateRow:
    edge = [math.copysign(1.0, o.mu) * o.next_return for o in items]
    would = sum(e * o.equity for e, o in zip(edge, items))
    cost = sum(cost_bps / 1e4 * o.equity for o in items)
    return GateRow(kind=kind, signals=len(items), hit_rate=sum(e > 0 for e in edge) / len(items),
                   mean_bps=sum(edge) / len(items) * 1e4, would_earn=would, net_of_costs=would - cost)


def refused_total(rows: Iterable[GateRow]) -> GateRow | None:
    """All refusals together."""
    refused = [r for r in rows if r.kind != TAKEN]
    if not refused:
        return None
    n = sum(r.signals for r in refused)
    return GateRow("all refused", n, sum(r.hit_rate * r.signals for r in refused) / n,
                   sum(r.mean_bps * r.signals for r in refused) / n, sum(r.would_earn for r in refused),
                   sum(r.net_of_costs for r in refused))


def round_trip_cost_bps(config: Mapping[str, object]) -> float:
    """Fees and slippage of entering and leaving once, from the run's ``[paper]`` settings (0 if unknown)."""
    paper = config.get("paper") if isinstance(config, Mapping) else None
    if not isinstance(paper, Mapping):
        return 0.0
    try:
        return 2.0 * (float(str(paper.get("taker_fee_bps", 0))) + float(str(paper.get("slippage_bps", 0))))
    except ValueError:
        return 0.0
