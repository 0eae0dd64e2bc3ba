"""A sweep spec (TOML): which config keys take which values, over which folds, symbol sets and data.

    [sweep]
    data = ["../shared/data"]            # CSV files or folders (relative to the spec file)
    config = "config.toml"               # base config (optional; relative to the spec file)
    symbol_sets = [["BTC/USDT", "ETH/USDT", "XRP/USDT"], ["SOL/USDT"]]
    search = "grid"                      # or "random": `samples` draws from the grid, seeded by `seed`
    samples = 16
    seed = 7
    keep_trade_logs = false              # keep every run's trade log (the held-out runs' always are)

    [folds]                              # [from, to) cut into `count` consecutive folds of equal length;
    from = "2025-01-01"                  # the last `test` of them are held out: only the configuration
    to = "2026-01-01"                    # chosen on the others is run there, once
    count = 4
    test = 1

    [grid]                               # dotted config keys and the values each takes
    "risk.gate.long_entry_margin" = [0.5, 1.0, 2.0]
    "forecast.skill.z" = [1.0, 2.0]

Every mistake is a :class:`~bot.errors.ConfigError` naming the spec key (and, for a grid value the config
refuses, the config key and what it allows), found before any data is read or any run started.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.errors import ConfigError, DataError

SEARCHES = ("grid", "random")
# Keys a sweep may not vary: where a run writes, and what names it, belong to the sweep.
_FIXED = ("run.", "market.symbols")


@dataclass(frozen=True, slots=True)
class Fold:
    name: str          # "f1", "f2", ...
    start_ms: int      # first bar decided
    end_ms: int        # exclusive
    test: bool         # held out: only the chosen configuration runs here


@dataclass(frozen=True, slots=True)
class SweepSpec:
    source: str                                  # the spec file, for messages
    data: tuple[Path, ...]
    base: Settings                               # the base config, before a grid point's overrides
    symbol_sets: tuple[tuple[str, ...], ...]
    folds: tuple[Fold, ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]  # (dotted key, values), in the spec's order
    search: str = "grid"
    samples: int = 0
    seed: int = 7
    keep_trade_logs: bool = False

    @property
    def validation_folds(self) -> tuple[Fold, ...]:
        return tuple(f for f in self.folds if not f.test)

    @property
    def test_folds(self) -> tuple[Fold, ...]:
        return tuple(f for f in self.folds if f.test)


def _err(source: str, key: str, what: str) -> ConfigError:
    return ConfigError(f"sweep spec {source}: key '{key}': {what}")


def _table(data: dict[str, Any], name: str, source: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    t = data.get(name)
    if not isinstance(t, dict):
        raise _err(source, name, "a [" + name + "] table is required")
    unknown = sorted(set(t) - set(allowed))
    if unknown:
        raise _err(source, f"{name}.{unknown[0]}", f"unknown key; allowed: {', '.join(allowed)}")
    return t


def _get(t: dict[str, Any], key: str, tp: type | tuple[type, ...], source: str, default: Any = None) -> Any:
    name = key.split(".", 1)[1]
    if name not in t:
        if default is None:
            raise _err(source, key, "required")
        return default
    v = t[name]
    if not isinstance(v, tp) or (tp is int and isinstance(v, bool)):
        want = tp.__name__ if isinstance(tp, type) else " or ".join(x.__name__ for x in tp)
        raise _err(source, key, f"expected {want}, got {type(v).__name__} {v!r}")
    return v


def _day(text: Any, key: str, source: str) -> int:
    if isinstance(text, dt.date) and not isinstance(text, dt.datetime):   # TOML's bare date: 2025-01-01
        text = text.isoformat()
    if not isinstance(text, str):
        raise _err(source, key, f"expected a date YYYY-MM-DD, got {text!r}")
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise _err(source, key, f"{text!r} is not a date YYYY-MM-DD") from None
    return int(day.timestamp() * 1000)


def _folds(t: dict[str, Any], source: str) -> tuple[Fold, ...]:
    for name in ("from", "to"):
        if name not in t:
            raise _err(source, f"folds.{name}", "required (a date YYYY-MM-DD)")
    start, end = _day(t.get("from"), "folds.from", source), _day(t.get("to"), "folds.to", source)
    if end <= start:
        raise _err(source, "folds.to", f"{t['to']} must be after folds.from {t['from']}")
    count = _get(t, "folds.count", int, source, 3)
    test = _get(t, "folds.test", int, source, 1)
    if not 2 <= count <= 100:
        raise _err(source, "folds.count", f"{count} is out of range; allowed: [2, 100]")
    if not 1 <= test < count:
        raise _err(source, "folds.test", f"{test} is out of range; allowed: [1, folds.count - 1 = {count - 1}] "
                   "(at least one validation fold to choose on, one held-out fold to report)")
    hour = 3_600_000
    edges = [start + (end - start) * i // count // hour * hour for i in range(count)] + [end]
    return tuple(Fold(f"f{i + 1}", edges[i], edges[i + 1], i >= count - test) for i in range(count))


def _grid(t: dict[str, Any], base: Settings, source: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not t:
        raise _err(source, "grid", "name at least one config key and its values")
    out = []
    for key, values in t.items():
        if isinstance(values, dict):
            raise _err(source, f"grid.{key}", "quote a dotted config key: \"risk.gate.exit_margin\" = [...]")
        if key.startswith(_FIXED):
            raise _err(source, f"grid.{key}", "a sweep sets this itself (run ids, trade logs, symbol sets)")
        if not isinstance(values, list) or not values:
            raise _err(source, f"grid.{key}", f"expected a non-empty list of values, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise _err(source, f"grid.{key}", f"a value is listed twice: {values}")
        section, _, name = key.rpartition(".")
        if not section:
            raise _err(source, f"grid.{key}", "expected a dotted config key such as risk.gate.exit_margin")
        for v in values:   # each value through the config's own validation: the same message as config.toml
            try:
                with_key(base, key, v)
            except ConfigError as exc:
                raise _err(source, f"grid.{key}", str(exc)) from None
        out.append((key, tuple(values)))
    return tuple(out)


def with_key(base: Settings, key: str, value: Any) -> Settings:
    """``base`` with one dotted key replaced, validated as config.toml is."""
    return base.with_keys({key: value})


def parse_spec(text: str, source: str = "<spec>", root: Path | None = None) -> SweepSpec:
    """Parse and validate a sweep spec; paths in it are relative to ``root`` (the spec's folder)."""
    root = root or Path(".")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep spec {source} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"sweep", "folds", "grid"})
    if unknown:
        raise _err(source, unknown[0], "unknown table; allowed: [sweep], [folds], [grid]")
    s = _table(data, "sweep", source, ("data", "config", "symbol_sets", "search", "samples", "seed",
                                       "keep_trade_logs"))
    f = _table(data, "folds", source, ("from", "to", "count", "test"))
    g = data.get("grid")
    if not isinstance(g, dict):
        raise _err(source, "grid", "a [grid] table of config keys and their values is required")
    paths = s.get("data")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise _err(source, "sweep.data", f"expected a path or a list of paths, got {paths!r}")
    config = _get(s, "sweep.config", str, source, "")
    base = load_settings(root / config) if config else Settings()
    sets = s.get("symbol_sets")
    if sets is None:
        sets = [list(base.market.symbols)]
    if (not isinstance(sets, list) or not sets
            or not all(isinstance(x, list) and x and all(isinstance(y, str) for y in x) for x in sets)):
        raise _err(source, "sweep.symbol_sets", f"expected a list of non-empty lists of symbols, got {sets!r}")
    for i, symbols in enumerate(sets):
        try:
            base.with_overrides(market={"symbols": symbols})
        except ConfigError as exc:
            raise _err(source, f"sweep.symbol_sets[{i}]", str(exc)) from None
    if len({tuple(x) for x in sets}) != len(sets):
        raise _err(source, "sweep.symbol_sets", "a symbol set is listed twice")
    search = _get(s, "sweep.search", str, source, "grid")
    if search not in SEARCHES:
        raise _err(source, "sweep.search", f"{search!r} is not allowed; allowed values: {', '.join(SEARCHES)}")
    samples = _get(s, "sweep.samples", int, source, 0)
    if search == "random" and samples < 1:
        raise _err(source, "sweep.samples", "random search needs samples >= 1")
    if search == "grid" and "samples" in s:
        raise _err(source, "sweep.samples", "only with search = \"random\"")
    seed = _get(s, "sweep.seed", int, source, 7)
    keep = _get(s, "sweep.keep_trade_logs", bool, source, False)
    return SweepSpec(source, tuple(root / p for p in paths), base, tuple(tuple(x) for x in sets),
                     _folds(f, source), _grid(g, base, source), search, samples, seed, keep)


def data_files(spec: SweepSpec) -> dict[str, Path]:
    """The CSV file of every symbol of every set among the spec's data (``*-{timeframe}.csv*`` in a folder);
    DataError naming what is missing."""
    from bot.feeds.replay.csvdata import symbol_from_filename

    tf = spec.base.market.timeframe
    files: dict[str, Path] = {}
    for p in spec.data:
        if p.is_dir():
            candidates = sorted(p.glob(f"*-{tf}.csv*"))
        elif p.exists():
            candidates = [p]
        else:
            raise DataError(f"sweep spec {spec.source}: key 'sweep.data': {p}: no such file or directory")
        for f in candidates:
            files.setdefault(symbol_from_filename(f), f)
    wanted = sorted({s for symbols in spec.symbol_sets for s in symbols})
    missing = [s for s in wanted if s not in files]
    if missing:
        raise DataError(f"sweep spec {spec.source}: no {tf} CSV for {', '.join(missing)} in "
                        f"{', '.join(map(str, spec.data))}; found {', '.join(sorted(files)) or 'none'}")
    return {s: files[s] for s in wanted}


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate the spec file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read sweep spec {p}: {exc.strerror or exc}") from exc
    return parse_spec(text, str(p), p.parent)


__all__ = ["Fold", "SweepSpec", "parse_spec", "load_spec", "with_key", "data_files"]
