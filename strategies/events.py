"""The event a predictor produces: a forecast of the next bar's log return.

Frozen, standard library only: ``risk/`` and ``bot/`` consume it without loading a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# The scoring stage's state after a bar as its values, not yet JSON: the skill regression's six sums, the
# calibration's three numbers, the monitor's two CUSUMs, the EWMA variance (plain floats) and the alarm.
# ``state_text`` writes it as the JSON the trade log keeps; a backtest leaves that to its writer process,
# because writing a float's shortest repr costs about as much as the rest of scoring a symbol.
StateValues = tuple[Any, ...]

_json_string = json.encoder.encode_basestring_ascii   # json.dumps's own string encoder (ensure_ascii=True)


@dataclass(frozen=True, slots=True)
class Forecast:
    """A predictive distribution of the next bar's log return: mean ``mu``, standard deviation ``sigma``.

    A predictor fills the first five fields (and ``edge`` when it forecasts several steps: the sum of
    their means).  The forecast the decisions use is the model's scored one
    (:class:`strategies.assessed.AssessedPredictor`): ``mu`` = ``skill`` × ``mu_raw``, ``sigma``
    recalibrated from ``sigma_raw``, central 68 %/95 % intervals ``mu ± z68·sigma`` / ``mu ± z95·sigma``,
    and the density a Student-t with ``nu`` degrees of freedom (Gaussian when infinite) with those
    intervals.  A forecast built without the scoring stage keeps the defaults: N(mu, sigma²) taken at
    face value.
    """

    symbol: str
    bar_ms: int
    mu: float
    sigma: float
    model: str
    edge: float = math.nan        # expected log return over the forecast's horizon (NaN: one step, = mu)
    edge_se: float = 0.0          # its standard error (the uncertainty of the mean, not of the return)
    mu_raw: float = math.nan      # the model's own mu, before the skill scale
    sigma_raw: float = math.nan   # the model's own sigma, before calibration
    skill: float = math.nan       # the scale applied: mu = skill × mu_raw (NaN: not scored)
    z68: float = 0.994457883209753
    z95: float = 1.959963984540054
    nu: float = math.inf
    alarm: str = ""               # the skill monitor's alarm while one is active
    # the scoring stage's state after this bar (JSON, or its StateValues until written): what a restart resumes
    state: str | StateValues = ""

    @property
    def expected(self) -> float:
        """The expected log return over the forecast's horizon."""
        return self.mu if math.isnan(self.edge) else self.edge


def state_text(state: str | StateValues) -> str:
    """The JSON of a forecast's ``state``: a string as it is; values as ``json.dumps`` writes the dict
    ``{"k": skill, "c": calibration, "m": monitor, "e": ewma_var, "a": alarm}`` with separators ``,`` and ``:``.
    Finite floats are written as json.dumps writes them (``float.__repr__``) and the alarm with json's own
    string encoder; anything else (NaN, infinities, other types, a sum that overflows) takes json.dumps."""
    if isinstance(state, str):
        return state
    v = state
    numbers, alarm = v[:12], v[12]
    if len(v) == 13 and alarm.__class__ is str:
        try:
            finite = math.isfinite(sum(numbers))
            f = list(map(float.__repr__, numbers))
        except TypeError:    # not a float
            finite = False
        if finite:
            return (f'{{"k":[{",".join(f[:6])}],"c":[{",".join(f[6:9])}],"m":[{f[9]},{f[10]}],"e":{f[11]},'
                    f'"a":{_json_string(alarm)}}}')
    return json.dumps({"k": list(v[:6]), "c": list(v[6:9]), "m": [v[9], v[10]], "e": v[11], "a": alarm},
                      separators=(",", ":"))


__all__ = ["Forecast", "StateValues", "state_text"]
