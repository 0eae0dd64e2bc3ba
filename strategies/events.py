"""The event a predictor produces: a forecast of the next bar's log return.

Frozen, standard library only: ``risk/`` and ``bot/`` consume it without loading a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
    state: str = ""               # the scoring stage's state after this bar (JSON): what a restart resumes

    @property
    def expected(self) -> float:
        """The expected log return over the forecast's horizon."""
        return self.mu if math.isnan(self.edge) else self.edge


__all__ = ["Forecast"]
