"""One file per trained model: weights, feature normalisation, config, data range and code version.

The file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``:
it holds tensors and plain values only, so loading a checkpoint can never run
code from it.  :func:`check_compatible` is the engine's gate: a checkpoint whose
model, features, symbols, timeframe or window needs disagree with the config is
refused with a message that says what differs and what to run.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from strategies.errors import ConfigError
from strategies.features import FEATURES, WARMUP, FeatureScaler
from strategies.models.base import Forecaster
from strategies.models.registry import forecaster_from_state

FORMAT = "sigma-bot-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    forecaster: Forecaster
    scaler: FeatureScaler
    symbols: tuple[str, ...]
    features: tuple[str, ...]
    timeframe: str
    data_range: dict[str, tuple[int, int]]   # symbol → (first, last) bar open ms the model was trained on
    code_version: str
    created: str
    summary: dict[str, Any]
    settings_json: str                       # the [model] section it was trained with

    @property
    def lookback(self) -> int:
        return self.forecaster.lookback

    @property
    def min_window(self) -> int:
        """Bars the engine's rolling window must hold: the model's rows plus the features' warm-up."""
        return self.forecaster.lookback + WARMUP


def _code_version() -> str:
    """The installed sigma-bot's version (what ``bot.__version__`` says), read without importing ``bot``."""
    try:
        return version("sigma-bot")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.1.0+src"


def save_checkpoint(path: str | Path, forecaster: Forecaster, *, scaler: FeatureScaler, symbols: tuple[str, ...],
                    timeframe: str, data_range: dict[str, tuple[int, int]], summary: dict[str, Any],
                    settings_json: str) -> Path:
    """Write the checkpoint atomically (temporary file, fsync, rename): a crash leaves the old file or the new."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": forecaster.kind,
        "params": forecaster.params(),      # type: ignore[attr-defined]
        "state": forecaster.get_state(),
        "scaler": scaler.to_lists(),
        "symbols": list(symbols),
        "features": list(FEATURES),
        "timeframe": timeframe,
        "data_range": {s: [int(a), int(b)] for s, (a, b) in data_range.items()},
        "code_version": _code_version(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": summary,
        "settings_json": settings_json,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint; ConfigError naming the file when it is missing, foreign or of another format."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # pickle/zip errors of every kind: the file is not ours or is damaged
        raise ConfigError(f"model checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a sigma-bot model checkpoint")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"model checkpoint {path} has format version {raw.get('format_version')}; "
                          f"this code reads version {FORMAT_VERSION}: retrain it with `bot train`")
    forecaster = forecaster_from_state(raw["kind"], raw["params"], raw["state"]).to(device)
    return Checkpoint(
        kind=raw["kind"], forecaster=forecaster, scaler=FeatureScaler.from_lists(raw["scaler"]),
        symbols=tuple(raw["symbols"]), features=tuple(raw["features"]), timeframe=raw["timeframe"],
        data_range={s: (int(a), int(b)) for s, (a, b) in raw["data_range"].items()},
        code_version=raw["code_version"], created=raw["created"], summary=raw["summary"],
        settings_json=raw["settings_json"])


def train_command(model: str, symbols: tuple[str, ...], out: str = "") -> str:
    """The exact command that trains what the config asks for (printed in refusals)."""
    target = out or f"models/{model}.pt"
    return (f"`bot train --data DATA_DIR_OR_CSV --symbols {' '.join(symbols)} --model {model} --out {target}`, "
            f"then set [model] checkpoint = \"{target}\"")


def check_compatible(ckpt: Checkpoint, path: str, model: str, symbols: tuple[str, ...], timeframe: str,
                     window: int) -> None:
    """Refuse a checkpoint that cannot serve this config, saying what differs and what to do."""
    problems = []
    if ckpt.kind != model:
        problems.append(f"it holds a {ckpt.kind!r} model but [model] name is {model!r}")
    if ckpt.features != FEATURES:
        problems.append(f"it was trained on features {list(ckpt.features)} but this code computes {list(FEATURES)}")
    if set(ckpt.symbols) != set(symbols):
        problems.append(f"it was trained on symbols {list(ckpt.symbols)} but [market] symbols are {list(symbols)}")
    if ckpt.timeframe != timeframe:
        problems.append(f"it was trained on {ckpt.timeframe} bars but [market] timeframe is {timeframe!r}")
    if problems:
        raise ConfigError(f"model checkpoint {path} does not match the config: " + "; ".join(problems)
                          + f". Retrain: {train_command(model, symbols, path)}")
    if window < ckpt.min_window:
        raise ConfigError(f"config key 'market.window': {window} bars is too short for the checkpoint {path}, "
                          f"which reads {ckpt.lookback} feature rows plus {WARMUP} bars of feature warm-up; "
                          f"set market.window to at least {ckpt.min_window}")
