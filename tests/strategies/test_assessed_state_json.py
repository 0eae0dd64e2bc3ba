"""The scoring state's hand-written JSON is the string json.dumps writes, for every kind of float and alarm."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from strategies.assessed import Tracked
from strategies.calibration import Calibration
from strategies.monitor import MonitorState
from strategies.skill import SkillStats

floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf])


@given(st.lists(floats, min_size=12, max_size=12), st.text())
def test_state_json_is_what_json_dumps_writes(x: list[float], alarm: str) -> None:
    t = Tracked(SkillStats(*x[:6]), Calibration(*x[6:9]), MonitorState(x[9], x[10]), x[11], alarm, None)
    assert t.to_json() == t._dumps()


def test_state_json_of_other_number_types_falls_back_to_json_dumps() -> None:
    t = Tracked(SkillStats(1, 2, 3, 4, 5, 6), Calibration(), MonitorState(), 0.5, "", None)  # type: ignore[arg-type]
    assert t.to_json() == t._dumps()
