"""Differential test: the engine logs exactly what it logged before the throughput work, table by table.

``scripts/trade_log_digests.py`` defines the cases (generated markets, with gaps in one; the default config,
the cost-blind ``strength`` gate with skill off trading most bars, a levered book under tight drawdown limits
that goes REDUCING and HALTED, the net-edge gate at zero margins) and hashes every table of each trade log
(rows sorted by ``repr``, ``run_id`` left out; ``runs`` and ``sessions`` hold wall-clock times).  The digests in
``tests/e2e/data/trade_log_digests.json`` were written by the engine at the branch point (3384fe4); any
difference in any row of any table fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("trade_log_digests", ROOT / "scripts" / "trade_log_digests.py")
assert _spec is not None and _spec.loader is not None
digests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(digests)

EXPECTED = json.loads((ROOT / "tests" / "e2e" / "data" / "trade_log_digests.json").read_text())


def test_every_case_has_a_reference_digest() -> None:
    assert sorted(EXPECTED) == sorted(digests.CASES)


@pytest.mark.parametrize("case", sorted(digests.CASES))
def test_trade_log_is_identical_to_the_reference_engine(case: str, tmp_path: Path) -> None:
    got = digests.run_case(case, tmp_path)
    want = {t: d for t, d in EXPECTED[case].items() if t not in digests.ADDED_TABLES}   # the version: 3 then
    assert sorted(got) == sorted(want), "the trade log's tables changed"
    differ = {t: (want[t][0], got[t][0]) for t in want if got[t] != want[t]}
    assert not differ, f"{case}: tables that differ from the reference engine (rows then, rows now): {differ}"
