"""`bot download` offline: the pure page rules and the journal that makes an interrupted download resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.data.files import TargetFile
from bot.data.pages import Gap, check_page, last_wanted_open, parse_when, plain_decimal
from bot.errors import ConfigError, DataError
from bot.feeds.replay.csvdata import Series, write_ohlcv_csv
from bot.feeds.replay.synthetic import generate_market

H = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SRC = generate_market(["BTC/USDT"], 200, START_MS, seed=5)["BTC/USDT"]


def csv_bytes(series: Series) -> bytes:
    lines = ["open_time,open,high,low,close,volume"] + [",".join(map(str, r)) for r in series.rows()]
    return ("\n".join(lines) + "\n").encode("ascii")


def target(out: Path) -> Path:
    return out / "BTCUSDT-1h.csv"


def test_times_parse_as_dates_or_epoch_ms() -> None:
    assert parse_when("2024-01-01", "--since") == START_MS == parse_when(str(START_MS), "--since")
    for bad in ("2024-13-01", "yesterday", "1704067200"):
        with pytest.raises(ConfigError, match="--since"):
            parse_when(bad, "--since")


def test_the_last_wanted_bar_is_closed_and_before_until() -> None:
    t = START_MS + 10 * H
    assert last_wanted_open(None, t, H) == t - H  # the bar opening at t is forming
    assert last_wanted_open(None, t - 1, H) == t - 2 * H
    assert last_wanted_open(t - H, t + 5 * H, H) == t - 2 * H
    assert last_wanted_open(t - H + 1, t + 5 * H, H) == t - H


def test_numbers_become_plain_decimal_strings_exactly() -> None:
    assert plain_decimal("42000.10") == "42000.10"
    assert plain_decimal("1e-05") == "0.00001" and plain_decimal(0.1) == "0.1" and plain_decimal(3) == "3"
    assert plain_decimal("nan") == "nan" and plain_decimal("-1") == "-1" and plain_decimal(True) is True


def test_check_page_reports_gaps_and_drops_rows_out_of_range() -> None:
    rows = [[START_MS + i * H, "1.0", "1.0", "1.0", "1.0", "0"] for i in (0, 1, 2, 5, 6, 9)]
    page = check_page(rows, what="p", timeframe_ms=H, since_ms=START_MS + H, last_ms=START_MS + 6 * H,
                      prev_open_ms=START_MS, known={START_MS: (START_MS, "1.0", "1.0", "1.0", "1.0", "0")})
    assert [r[0] for r in page.rows] == [START_MS + i * H for i in (1, 2, 5, 6)]
    assert (page.overlap, page.beyond) == (1, 1)
    assert page.gaps == (Gap(START_MS + 3 * H, START_MS + 4 * H, H),)
    with pytest.raises(DataError, match="p: line 2: .*not a positive"):
        check_page([rows[0], [START_MS + H, "0", "1", "1", "1", "1"]], what="p", timeframe_ms=H,
                   since_ms=START_MS, last_ms=START_MS + H, prev_open_ms=None, known={})



# ---------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------

def test_a_torn_journal_tail_is_dropped_and_the_rest_merged(tmp_path: Path) -> None:
    src = SRC
    write_ohlcv_csv(target(tmp_path), src.slice(0, 100))
    journal = tmp_path / "BTCUSDT-1h.partial"
    journal.write_bytes(csv_bytes(src.slice(100, 150)) + b"1704607200000,42000.1,420")  # killed mid-line
    t = TargetFile(target(tmp_path), H)
    t.open()
    assert t.last_ms == START_MS + 149 * H and not journal.exists()
    assert target(tmp_path).read_bytes() == csv_bytes(src.slice(0, 150))


def test_a_journal_already_merged_before_a_crash_is_removed(tmp_path: Path) -> None:
    src = SRC
    write_ohlcv_csv(target(tmp_path), src.slice(0, 150))
    journal = tmp_path / "BTCUSDT-1h.partial"
    journal.write_bytes(csv_bytes(src.slice(100, 150)))  # died between the rename and the unlink
    before = target(tmp_path).read_bytes()
    t = TargetFile(target(tmp_path), H)
    t.open()
    assert t.rows == 150 and not journal.exists() and target(tmp_path).read_bytes() == before
    # A journal that disagrees with the file is refused, and both are left alone.
    rows = list(src.slice(100, 150).rows())
    rows[20] = (*rows[20][:5], "12345.6")  # another volume for one bar
    journal.write_bytes(csv_bytes(Series.from_rows(rows)))
    with pytest.raises(DataError, match="differ"):
        TargetFile(target(tmp_path), H).open()
    assert journal.exists() and target(tmp_path).read_bytes() == before
