"""Output files a command writes (``--html``, ``--png``, ``--csv``, ``--out``, ``--json``), checked before the work.

A command that would spend minutes and then fail to save its result checks first: the folder exists
and is writable, and the path is not a folder.  The check raises :class:`~bot.errors.ConfigError`
(exit code 2) naming the option and what is wrong with the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.errors import ConfigError


def check_output_file(path: str | Path, option: str, *, makes_folders: bool = False) -> Path:
    """``path`` as a Path if a file can be written there; ConfigError naming ``option`` if not.

    ``makes_folders``: the command creates missing folders (``bot train --out``), so the nearest
    existing one must be a writable folder.
    """
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise ConfigError(f"{option} {p}: is a folder; give a file name")
    if makes_folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise ConfigError(f"{option} {p}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ConfigError(f"{option} {p}: {folder} is not a folder")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{option} {p}: the file is not writable")
    if not p.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {p}: folder {folder} is not writable")
    return p
