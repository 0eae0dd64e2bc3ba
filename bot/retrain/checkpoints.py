"""The retrained checkpoints' folder: names, hashes, retention, and loading with every check before serving.

    <folder>/v<version>.pt            a candidate's checkpoint (written to a temporary file, then renamed)
    <folder>/v<version>.job.json      the job the worker ran
    <folder>/v<version>.result.json   its verdict (written the same way)
    <folder>/v<version>.log           the worker's output

A checkpoint is served only if its SHA-256 is the one the models table recorded, it loads
(``weights_only``) and it fits the config (:func:`strategies.checkpoint.check_compatible`); otherwise it is
refused with the reason and the serving model stays.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

log = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^v(\d+)\.(pt|job\.json|result\.json|log)$")


def folder_for(checkpoint_dir: str, db: str) -> Path:
    """``[model.retrain] checkpoint_dir``, or ``<trade log>.models`` beside the trade log."""
    return Path(checkpoint_dir) if checkpoint_dir else Path(str(db) + ".models")


def paths(folder: Path, version: int) -> dict[str, Path]:
    return {"checkpoint": folder / f"v{version}.pt", "job": folder / f"v{version}.job.json",
            "result": folder / f"v{version}.result.json", "log": folder / f"v{version}.log"}


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_partials(folder: Path) -> list[Path]:
    """Delete the temporary files a killed worker left (``*.tmp``): nothing refers to them."""
    gone = [p for p in folder.glob("*.tmp") if p.is_file()]
    for p in gone:
        p.unlink(missing_ok=True)
    if gone:
        log.info("removed %d partial file(s) a stopped retrain left in %s", len(gone), folder)
    return gone


def prune(folder: Path, keep: int, protect: Iterable[int]) -> list[int]:
    """Keep the files of the newest ``keep`` versions and of ``protect`` (serving, pending); delete the rest."""
    versions: dict[int, list[Path]] = {}
    for p in folder.iterdir() if folder.is_dir() else ():
        m = _VERSIONED.match(p.name)
        if m:
            versions.setdefault(int(m.group(1)), []).append(p)
    keep_set = set(sorted(versions)[-keep:]) | set(protect)
    dropped = sorted(v for v in versions if v not in keep_set)
    for v in dropped:
        for p in versions[v]:
            p.unlink(missing_ok=True)
    if dropped:
        log.info("checkpoint retention (%d kept): removed version(s) %s", keep, dropped)
    return dropped


def load_verified(path: str | Path, sha256: str, settings: Any, kind: str, device: Any) -> Any:
    """The :class:`~strategies.checkpoint.Checkpoint` at ``path``, or ConfigError saying why it may not serve."""
    from strategies.checkpoint import check_compatible, load_checkpoint

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {p} does not exist")
    got = sha256_of(p)
    if sha256 and got != sha256:
        raise ConfigError(f"checkpoint {p} has SHA-256 {got[:12]}…, the models table recorded {sha256[:12]}…")
    ckpt = load_checkpoint(p, device)       # ConfigError (strategies.errors, re-exported by bot.errors)
    m = settings.market
    check_compatible(ckpt, str(p), kind, m.symbols, m.timeframe, m.window)
    return ckpt
