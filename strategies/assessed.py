"""Forecasts as the decisions may trust them: a predictor's output scored against what happened.

    predictor ──► raw N(μ, σ²) ──► skill scale b·μ ──► calibrated σ, intervals, t shape ──► decisions
                         ▲                                                          │
                         └──── the realised return of the bar that just closed ◄────┘

:class:`AssessedPredictor` wraps any :class:`~strategies.base.Predictor`.  At each bar, for every
symbol whose forecast of the previous bar is known, it first scores that forecast against the return
the window now shows (``log close_t / close_{t−1}``) — the skill regression
(:mod:`strategies.skill`), the calibration (:mod:`strategies.calibration`) and the skill monitor
(:mod:`strategies.monitor`) — then asks the inner predictor for this bar and returns the forecasts
with μ scaled by the demonstrated skill and σ recalibrated.  Each forecast carries the state after
its bar (``Forecast.state``, JSON) and the trade log keeps it, so a restart resumes every estimate
exactly where the last committed bar left it.

A model with no demonstrated skill has μ = 0: it cannot trade.  An alarm of the monitor resets the
model's skill for that symbol (skill must be shown again, on outcomes after the alarm) and is
carried in ``Forecast.alarm`` until it has been.

Seeds: a checkpoint from ``bot train`` stores the skill regression and the calibration measured on
its validation range (``summary["assessment"]``); the regression's seed weighs at most
``seed_bars`` outcomes.  The baseline starts with no skill at all.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from strategies.base import CLOSE, Predictor
from strategies.baseline import ewma_variance
from strategies.calibration import Z68, Z95, Calibration, shape_for
from strategies.events import Forecast, StateValues, state_text
from strategies.monitor import MonitorState, gaussian_nll, monitor_step
from strategies.skill import SkillStats, decay_for, effective_scale

log = logging.getLogger("strategies.assessed")


def state_values(skill: SkillStats, calibration: Calibration, monitor: MonitorState, ewma_var: float,
                 alarm: str) -> str | StateValues:
    """The state for ``Forecast.state``: its values when they are plain floats and a string (they cross to a
    backtest's writer process as they are, and become JSON there: :func:`strategies.events.state_text`), else
    the JSON at once."""
    k, c = skill.to_list(), calibration.to_list()
    if len(k) == 6 and len(c) == 3:
        v = (*k, *c, monitor.nll_cusum, monitor.pit_cusum, ewma_var, alarm)
        if alarm.__class__ is str and all(x.__class__ is float for x in v[:12]):
            return v
    return json.dumps({"k": k, "c": c, "m": [monitor.nll_cusum, monitor.pit_cusum], "e": ewma_var, "a": alarm},
                      separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Tracked:
    """What is known of one symbol's model after a bar: the estimates and that bar's forecast."""

    skill: SkillStats
    calibration: Calibration
    monitor: MonitorState
    ewma_var: float               # RiskMetrics variance after the bar: the monitor's baseline for the next
    alarm: str
    last: Forecast | None         # the forecast made at the bar (scored at the next one)

    def to_json(self) -> str:
        return state_text(state_values(self.skill, self.calibration, self.monitor, self.ewma_var, self.alarm))

    def _dumps(self) -> str:
        return json.dumps({"k": self.skill.to_list(), "c": self.calibration.to_list(),
                           "m": [self.monitor.nll_cusum, self.monitor.pit_cusum], "e": self.ewma_var,
                           "a": self.alarm}, separators=(",", ":"))

    @classmethod
    def from_forecast(cls, f: Forecast) -> Tracked | None:
        """The state a logged forecast carries; None when it carries none (an older log)."""
        if not f.state:
            return None
        d = json.loads(state_text(f.state))
        m = d["m"]
        return cls(SkillStats.from_list(d["k"]), Calibration.from_list(d["c"]), MonitorState(float(m[0]), float(m[1])),
                   float(d["e"]), str(d["a"]), f)


@dataclass(frozen=True, slots=True)
class Seed:
    skill: SkillStats
    calibration: Calibration


def seeds_from_summary(summary: Mapping[str, Any], seed_bars: int) -> dict[str, Seed]:
    """Per-symbol seeds from a checkpoint's ``summary["assessment"]``; the regression capped at ``seed_bars``."""
    out: dict[str, Seed] = {}
    for symbol, a in dict(summary.get("assessment", {})).items():
        stats = SkillStats.from_list(a["skill"])
        stats = stats.scaled(min(1.0, seed_bars / stats.sw)) if stats.sw > 0 and seed_bars > 0 else SkillStats()
        out[symbol] = Seed(stats, Calibration.from_list(a["calibration"]))
    return out


def _ewma_of(closes: np.ndarray, lam: float) -> float:
    """RiskMetrics variance after the window's last return, seeded with the window's mean square."""
    r = np.diff(np.log(closes))
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan
    return float(ewma_variance(r[None, :], lam)[0])


class AssessedPredictor:
    """Any predictor, with μ scaled by demonstrated skill and σ calibrated, online, per symbol."""

    def __init__(self, inner: Predictor, settings: Any, timeframe_ms: int,
                 seeds: Mapping[str, Seed] | None = None) -> None:
        self.inner = inner
        self.s = settings          # strategies.settings.ForecastSettings
        self.tf_ms = timeframe_ms
        self.seeds = dict(seeds or {})
        self.tracked: dict[str, Tracked] = {}
        self._skill_decay = decay_for(settings.skill.halflife_bars)
        self._var_decay = decay_for(settings.calibration.halflife_bars)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def min_window(self) -> int:
        return self.inner.min_window

    def restore(self, forecasts: Sequence[Forecast]) -> int:
        """Resume from the last logged forecast of each symbol; returns how many carried a state."""
        n = 0
        for f in forecasts:
            t = Tracked.from_forecast(f)
            if t is not None:
                self.tracked[f.symbol] = t
                n += 1
        return n

    def _fresh(self, symbol: str, closes: np.ndarray) -> Tracked:
        seed = self.seeds.get(symbol)
        return Tracked(seed.skill if seed else SkillStats(), seed.calibration if seed else Calibration(),
                       MonitorState(), _ewma_of(closes, self.s.monitor.ewma_lambda), "", None)

    def predict(self, bar_ms: int, symbols: Sequence[str], windows: np.ndarray) -> list[Forecast]:
        moments = getattr(self.inner, "predict_moments", None)
        if moments is not None:    # a OneStepGaussianPredictor: its numbers, without a raw Forecast each
            mus, sigmas = moments(bar_ms, symbols, windows)
            if not mus:
                return []
            closes = windows[:, -2:, CLOSE].tolist()
            name, nan = self.inner.name, math.nan
            return [self._assessed(s, bar_ms, m, sd, nan, name,
                                   self._score(s, bar_ms, closes[i], windows[i, :, CLOSE]))
                    for i, (s, m, sd) in enumerate(zip(symbols, mus, sigmas))]
        raw = self.inner.predict(bar_ms, symbols, windows)
        if not raw:
            return raw
        closes = windows[:, -2:, CLOSE].tolist()
        out: list[Forecast] = []
        for i, f in enumerate(raw):
            t = self._score(f.symbol, bar_ms, closes[i], windows[i, :, CLOSE])
            out.append(self._assess(f, t))
        return out

    def _score(self, symbol: str, bar_ms: int, last2: list[float], window_closes: np.ndarray) -> Tracked:
        """The symbol's state after scoring its previous forecast against the bar that just closed."""
        t = self.tracked.get(symbol)
        prev = t.last if t is not None else None
        if t is None or prev is None or prev.bar_ms != bar_ms - self.tf_ms:
            # First sight, or a hole since the last forecast: the estimates stay, the baseline restarts.
            base = self._fresh(symbol, window_closes)
            return base if t is None else replace(t, ewma_var=base.ewma_var, last=None)
        c0, c1 = last2
        r = math.log(c1 / c0) if c0 > 0 and c1 > 0 else math.nan
        return self._scored(t, prev, r, bar_ms, symbol)

    def _scored(self, t: Tracked, prev: Forecast, r: float, bar_ms: int, symbol: str) -> Tracked:
        """``t`` after the forecast ``prev`` met the realised return ``r``."""
        if not math.isfinite(r):
            return replace(t, last=None)
        s = self.s
        skill, cal, mon, alarm = t.skill, t.calibration, t.monitor, t.alarm
        mu_raw = prev.mu_raw if math.isfinite(prev.mu_raw) else prev.mu
        sigma_raw = prev.sigma_raw if math.isfinite(prev.sigma_raw) else prev.sigma
        skill = skill.updated(mu_raw, r, self._skill_decay)
        if sigma_raw > 0:
            cal = cal.updated((r - prev.mu) / sigma_raw, s.calibration.step, self._var_decay)
        if s.monitor.enabled and prev.sigma > 0 and t.ewma_var > 0:
            excess = gaussian_nll(mu_raw, prev.sigma, r) - gaussian_nll(0.0, math.sqrt(t.ewma_var), r)
            miss95 = abs(r - prev.mu) > prev.z95 * prev.sigma
            m = s.monitor
            step = monitor_step(mon, excess, miss95, m.nll_allowance, m.nll_threshold, m.pit_rate, m.pit_threshold)
            mon = step.state
            if step.fired:
                alarm = f"since bar {bar_ms}: {step.fired}"
                skill = SkillStats()        # skill must be shown again, on outcomes after the alarm
                log.warning("SKILL ALARM %s %s: %s; no new exposure from it until skill is shown again",
                            prev.model, symbol, step.fired)
        lam = s.monitor.ewma_lambda
        ewma = lam * t.ewma_var + (1.0 - lam) * r * r if math.isfinite(t.ewma_var) else t.ewma_var
        return Tracked(skill, cal, mon, ewma, alarm, None)

    def _assess(self, f: Forecast, t: Tracked) -> Forecast:
        return self._assessed(f.symbol, f.bar_ms, f.mu, f.sigma, f.edge, f.model, t)

    def _assessed(self, symbol: str, bar_ms: int, mu_raw: float, sigma_raw: float, raw_edge: float, model: str,
                  t: Tracked) -> Forecast:
        """The scored forecast of a raw one given by its fields (``raw_edge`` NaN: one step, the edge is μ)."""
        s = self.s
        edge_raw = mu_raw if math.isnan(raw_edge) else raw_edge    # the raw forecast's ``expected``
        alarm = t.alarm
        if s.skill.enabled:
            b, _, se = effective_scale(t.skill, s.skill.z, s.skill.min_bars, s.skill.max_scale)
            if alarm and b > 0:
                log.info("%s %s: skill shown again after the alarm (scale %.3f)", model, symbol, b)
                alarm = ""
            if alarm:
                b = 0.0
            edge_se = se * abs(edge_raw) if math.isfinite(se) else math.inf
            if math.isnan(edge_se):
                edge_se = math.inf
        else:
            b, edge_se = 1.0, 0.0
        if s.calibration.enabled and sigma_raw > 0 and math.isfinite(sigma_raw):
            # calibrated(sigma_raw, t.calibration), inline: the same operations, no Calibrated per symbol-bar
            c = t.calibration
            sigma = sigma_raw * math.sqrt(c.var_scale)
            nu = shape_for(c.q95 / c.q68)[0]
            z68, z95 = c.q68 * sigma_raw / sigma, c.q95 * sigma_raw / sigma
        else:
            sigma, z68, z95, nu = sigma_raw, Z68, Z95, math.inf
        state = state_values(t.skill, t.calibration, t.monitor, t.ewma_var, alarm)
        out = Forecast(symbol, bar_ms, b * mu_raw, sigma, model,
                       edge=b * edge_raw if not math.isnan(raw_edge) else math.nan, edge_se=edge_se,
                       mu_raw=mu_raw, sigma_raw=sigma_raw, skill=b, z68=z68, z95=z95, nu=nu, alarm=alarm,
                       state=state)
        self.tracked[symbol] = Tracked(t.skill, t.calibration, t.monitor, t.ewma_var, alarm, out)
        return out


def assess_sequence(mu: Sequence[float], sigma: Sequence[float], y: Sequence[float], settings: Any,
                    seed: Seed | None = None) -> list[Forecast]:
    """One symbol's consecutive forecasts (μ, σ) of outcomes ``y`` through the scoring stage, as the engine
    would score them bar by bar: forecast k is assessed with what outcomes 0..k−1 showed.  For offline
    evaluation (``bot evaluate``) of what the decisions would have been given."""
    # _Fixed is never asked to predict: the forecasts are given, one at a time, to assess().
    a = AssessedPredictor(cast(Predictor, _Fixed()), settings, 1, {"x": seed} if seed else None)
    out: list[Forecast] = []
    prev: Forecast | None = None
    t: Tracked | None = None
    for k, (m, sd) in enumerate(zip(mu, sigma)):
        if t is None:
            t = Tracked(seed.skill if seed else SkillStats(), seed.calibration if seed else Calibration(),
                        MonitorState(), float(sd) ** 2, "", None)
        elif prev is not None:
            t = a._scored(t, prev, float(y[k - 1]), k, "x")
        f = a._assess(Forecast("x", k, float(m), float(sd), "eval"), t)
        t = a.tracked["x"]
        prev = f
        out.append(f)
    return out


class _Fixed:
    name = "eval"
    min_window = 1
