"""The operator's log: rotation, UTC timestamps, idempotent setup, and secrets masked wherever they hide."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from bot.cli.logs import RedactSecrets, reset_logging, run_log_options, setup_logging
from bot.config import RunSettings, parse_settings
from bot.errors import ConfigError

SECRET = "s3cr3t/Key+with=odd&chars"
KEY = "AKIA-sigma-test-key-0001"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()   # closes the log files, and drops handlers bound to pytest's capture streams
    root.setLevel(level)


def owned() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_sigma_bot_handler", False)]


def flush() -> None:
    for h in owned():
        h.flush()


def test_rotation_keeps_the_configured_number_of_backups(tmp_path: Path) -> None:
    log_file = tmp_path / "bot.log"
    setup_logging("INFO", str(log_file), max_bytes=2_000, backups=2)
    log = logging.getLogger("bot.test")
    for i in range(200):
        log.info("line %04d %s", i, "x" * 40)
    flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["bot.log", "bot.log.1", "bot.log.2"]
    for p in tmp_path.iterdir():
        assert 0 < p.stat().st_size <= 2_000
    # The newest lines are in bot.log, the ones before them in bot.log.1, and nothing in between is lost.
    current = log_file.read_text(encoding="utf-8").splitlines()
    previous = (tmp_path / "bot.log.1").read_text(encoding="utf-8").splitlines()
    assert current[-1].endswith(f"line 0199 {'x' * 40}")
    matches = [re.search(r"line (\d{4})", line) for line in previous + current]
    numbers = [int(m.group(1)) for m in matches if m]
    assert len(numbers) == len(matches)
    assert numbers == list(range(numbers[0], 200))


def test_no_backups_means_the_file_is_truncated_not_kept(tmp_path: Path) -> None:
    log_file = tmp_path / "bot.log"
    setup_logging("INFO", str(log_file), max_bytes=1_000, backups=0)
    log = logging.getLogger("bot.test")
    for i in range(100):
        log.info("line %04d %s", i, "y" * 40)
    flush()
    assert [p.name for p in tmp_path.iterdir()] == ["bot.log"]


def test_format_is_utc_iso_with_level_and_logger(tmp_path: Path) -> None:
    (_stderr, file_handler) = setup_logging("DEBUG", str(tmp_path / "bot.log"))
    record = logging.LogRecord("bot.runs.engine", logging.WARNING, __file__, 1, "feed %s", ("quiet",), None)
    record.created, record.msecs = 0.25, 250.0   # the epoch: 1970-01-01 00:00:00.250 UTC in any time zone
    assert file_handler.format(record) == "1970-01-01T00:00:00.250Z WARNING bot.runs.engine: feed quiet"
    logging.getLogger("bot.test").debug("hello %d", 42)
    flush()
    line = (tmp_path / "bot.log").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z DEBUG   bot\.test: hello 42", line)


def test_setup_twice_replaces_its_handlers_and_leaves_others_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    foreign = len([h for h in root.handlers if not getattr(h, "_sigma_bot_handler", False)])
    setup_logging("INFO", str(tmp_path / "a.log"))
    setup_logging("WARNING", str(tmp_path / "b.log"))
    assert len(owned()) == 2
    assert len(root.handlers) == foreign + 2
    assert root.level == logging.WARNING
    logging.getLogger("bot.test").warning("once")
    flush()
    assert (tmp_path / "b.log").read_text(encoding="utf-8").count("once") == 1
    assert "once" not in (tmp_path / "a.log").read_text(encoding="utf-8")
    setup_logging("INFO")
    assert len(owned()) == 1


def test_bad_level_and_missing_folder_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRACE"):
        setup_logging("TRACE")
    with pytest.raises(ConfigError, match="does not exist"):
        setup_logging("INFO", str(tmp_path / "no" / "such" / "bot.log"))


def read_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    flush()
    return capsys.readouterr().err + "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir())


def assert_no_secret(text: str) -> None:
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET), KEY):
        assert form not in text


def test_secrets_are_masked_in_messages_and_args(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", str(tmp_path / "bot.log"), secrets=[KEY, SECRET])
    log = logging.getLogger("bot.test")
    log.info("connecting with key %s and secret %r", KEY, SECRET)
    log.info(f"inline {SECRET} in the message itself")
    log.debug("in a dict %s", {"apiKey": KEY, "nested": [SECRET]})
    log.warning("url-encoded: https://x.test/?k=%s&q=%s", quote(SECRET, safe=""), quote_plus(SECRET))
    log.info("percent literal 100%% kept; %s masked", KEY)
    text = read_all(tmp_path, capsys)
    assert_no_secret(text)
    assert text.count("***") >= 8
    assert "percent literal 100% kept; *** masked" in text
    assert "connecting with key *** and secret '***'" in text


def test_secrets_are_masked_inside_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", str(tmp_path / "bot.log"), secrets=[KEY, SECRET])
    log = logging.getLogger("bot.test")

    def sign(secret: str) -> None:
        raise ValueError(f"signature rejected for {secret}")

    try:
        try:
            sign(SECRET)
        except ValueError as inner:
            raise RuntimeError(f"order refused (key {KEY})") from inner
    except RuntimeError:
        log.exception("placing an order failed")
    log.warning("where am I (%s)", KEY, stack_info=True)
    text = read_all(tmp_path, capsys)
    assert_no_secret(text)
    assert "ValueError: signature rejected for ***" in text
    assert "RuntimeError: order refused (key ***)" in text
    assert "Stack (most recent call last)" in text


def test_redaction_without_secrets_changes_nothing() -> None:
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "a %s", ("b",), None)
    assert RedactSecrets([""]).filter(record)
    assert (record.msg, record.args) == ("a %s", ("b",))


def test_a_secret_containing_another_is_masked_whole() -> None:
    f = RedactSecrets(["abc", "xxabcxx"])
    assert f.redact("k=xxabcxx and abc") == "k=*** and ***"


def test_run_log_options_come_from_the_run_settings() -> None:
    assert run_log_options(RunSettings()) == (None, 10_000_000, 5)
    run = parse_settings('[run]\nlog_file = "/var/log/bot.log"\nlog_max_bytes = 50000\nlog_backups = 3').run
    assert run_log_options(run) == ("/var/log/bot.log", 50_000, 3)
