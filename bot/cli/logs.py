"""The operator's text log: stderr plus an optional size-rotated file, UTC timestamps, secrets masked.

The SQLite trade log is the audit trail; this log is for the operator.  Every
handler carries a :class:`RedactSecrets` filter, so a credential (or its
URL-encoded form) that reaches a message, its arguments, an exception's
traceback or a stack dump is written as ``***``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

from bot.config import RunSettings
from bot.errors import ConfigError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MASK = "***"
FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Defaults of the proposed [run] keys, used while the settings do not declare them yet.
DEFAULT_LOG_MAX_BYTES = 10_000_000
DEFAULT_LOG_BACKUPS = 5

# Marks the handlers setup_logging installed, so a second call replaces them instead of adding more.
_OWNED = "_sigma_bot_handler"


class UtcFormatter(logging.Formatter):
    """ISO-8601 timestamps in UTC (``2024-01-01T00:00:00.000Z``), whatever the machine's time zone."""

    converter = time.gmtime


class RedactSecrets(logging.Filter):
    """Replace every secret, and its URL-encoded forms, with ``***`` in a record before it is formatted.

    The record is changed in place (the message is formatted with its arguments, the traceback
    rendered), so the handlers that see it after this one get the masked text too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        forms: set[str] = set()
        for s in secrets:
            if s:
                forms.update({s, quote(s, safe=""), quote_plus(s), quote(s)})
        # Longest first: a secret that contains another is masked whole.
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._forms:
            return True
        try:
            message = record.getMessage()
        except Exception:   # a bad format string: keep what there is, masked, rather than lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, _OWNED, False)]


def setup_logging(level: str, log_file: str | Path | None = None, max_bytes: int = DEFAULT_LOG_MAX_BYTES,
                  backups: int = DEFAULT_LOG_BACKUPS, secrets: Iterable[str] = ()) -> list[logging.Handler]:
    """Log at ``level`` to stderr and, given ``log_file``, to a file rotated at ``max_bytes`` keeping ``backups``.

    Calling it again replaces the handlers of the previous call (handlers installed by others, such as
    pytest's, are left alone).  Returns the handlers installed.
    """
    if level not in LEVELS:
        raise ConfigError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if max_bytes < 1:
        raise ConfigError(f"log file size limit must be positive, got {max_bytes}")
    if backups < 0:
        raise ConfigError(f"log file backups must not be negative, got {backups}")
    reset_logging()
    root = logging.getLogger()
    formatter = UtcFormatter(FORMAT, DATE_FORMAT)
    redact = RedactSecrets(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        path = Path(log_file)
        if not path.parent.is_dir():
            raise ConfigError(f"log file {path}: folder {path.parent} does not exist")
        try:
            handlers.append(logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                                 encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot open log file {path}: {exc.strerror or exc}") from exc
    for h in handlers:
        h.setFormatter(formatter)
        h.addFilter(redact)
        setattr(h, _OWNED, True)
        root.addHandler(h)
    root.setLevel(getattr(logging, level))
    return handlers


def reset_logging() -> None:
    """Remove and close the handlers :func:`setup_logging` installed (log files are flushed and closed)."""
    root = logging.getLogger()
    for h in _handlers(root):
        root.removeHandler(h)
        h.close()


def run_log_options(run: RunSettings) -> tuple[str | None, int, int]:
    """(log_file, max_bytes, backups) from the ``[run]`` settings."""
    return (run.log_file or None, run.log_max_bytes, run.log_backups)


def setup_run_logging(run: RunSettings, secrets: Iterable[str] = (), level: str | None = None) -> list[logging.Handler]:
    """:func:`setup_logging` from the ``[run]`` settings (log_level unless ``level`` is given, log_file,
    log_max_bytes, log_backups)."""
    log_file, max_bytes, backups = run_log_options(run)
    return setup_logging(level or run.log_level, log_file, max_bytes, backups, secrets)


__all__ = ["setup_logging", "setup_run_logging", "reset_logging", "run_log_options", "RedactSecrets", "UtcFormatter"]
