"""The synthetic market's stylized facts, and the OHLCV CSV format on generated and real data."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bot.errors import DataError
from bot.feeds.replay.csvdata import (
    Series,
    load_ohlcv_csv,
    symbol_from_filename,
    timeframe_from_filename,
    write_ohlcv_csv,
)
from bot.feeds.replay.synthetic import generate_lead_lag_market, generate_market, price_decimals

H = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def long_market() -> dict[str, Series]:
    return generate_market(["BTC/USDT", "ETH/USDT", "SOL/USDT"], 20_000, START_MS, seed=7)


def log_returns(s: Series) -> np.ndarray:
    c = np.array(s.close, dtype=float)
    o = np.array(s.open, dtype=float)
    return np.log(c / o)


def assert_ohlc_consistent(s: Series, timeframe_ms: int = H) -> None:
    assert np.all(np.diff(s.open_ms) == timeframe_ms)
    for i in range(len(s)):
        o, h, lo, c, v = (Decimal(x[i]) for x in (s.open, s.high, s.low, s.close, s.volume))
        assert 0 < lo <= min(o, c) <= max(o, c) <= h, (i, s.row(i))
        assert v >= 0


# -- the model ---------------------------------------------------------------

def test_same_seed_same_market_and_another_seed_differs() -> None:
    a = generate_market(["BTC/USDT", "XRP/USDT"], 300, START_MS, seed=3)
    b = generate_market(["BTC/USDT", "XRP/USDT"], 300, START_MS, seed=3)
    c = generate_market(["BTC/USDT", "XRP/USDT"], 300, START_MS, seed=4)
    for sym in a:
        assert list(a[sym].rows()) == list(b[sym].rows())
        assert list(a[sym].rows()) != list(c[sym].rows())


def test_prices_start_where_documented_on_a_fixed_tick() -> None:
    m = generate_market(["BTC/USDT", "ETH/USDT", "XRP/USDT", "DOGE/USDT"], 50, START_MS, seed=1)
    assert m["BTC/USDT"].open[0] == "30000.00"
    assert m["ETH/USDT"].open[0] == "2000.00"
    assert m["XRP/USDT"].open[0] == "0.500000"
    assert m["DOGE/USDT"].open[0] == "10.0000"
    for sym, s in m.items():
        decimals = {len(x.split(".")[1]) for col in (s.open, s.high, s.low, s.close) for x in col}
        assert len(decimals) == 1, sym
        assert "e" not in "".join(s.volume).lower()
    assert price_decimals(30000) == 2 and price_decimals(0.5) == 6


def test_every_bar_is_consistent_and_opens_at_the_previous_close(long_market: dict[str, Series]) -> None:
    for s in long_market.values():
        part = s.slice(0, 4000)
        assert_ohlc_consistent(part)
        assert part.open[1:] == part.close[:-1]
        assert int(part.open_ms[0]) == START_MS


def test_returns_are_fat_tailed_with_clustered_volatility(long_market: dict[str, Series]) -> None:
    for sym, s in long_market.items():
        r = log_returns(s)
        z = r - r.mean()
        excess_kurtosis = (z**4).mean() / (z**2).mean() ** 2 - 3
        assert excess_kurtosis > 1, sym
        sq = r**2
        acf1 = np.corrcoef(sq[:-1], sq[1:])[0, 1]
        assert acf1 > 0.05, sym
        assert 0.003 < r.std() < 0.015, sym


def test_btc_hourly_volatility_is_about_six_tenths_of_a_percent(long_market: dict[str, Series]) -> None:
    assert 0.0045 < log_returns(long_market["BTC/USDT"]).std() < 0.0075


def test_symbols_move_together(long_market: dict[str, Series]) -> None:
    r = np.array([log_returns(s) for s in long_market.values()])
    corr = np.corrcoef(r)
    assert corr[np.triu_indices(3, 1)].min() > 0.4


def test_volume_and_volatility_follow_the_utc_day(long_market: dict[str, Series]) -> None:
    s = long_market["BTC/USDT"]
    hour = (s.open_ms % 86_400_000) // H
    v = np.array(s.volume, dtype=float)
    absr = np.abs(log_returns(s))
    by_hour_v = np.array([v[hour == h].mean() for h in range(24)])
    by_hour_r = np.array([absr[hour == h].mean() for h in range(24)])
    assert by_hour_v.max() / by_hour_v.min() > 1.5
    assert by_hour_r.max() / by_hour_r.min() > 1.2
    assert int(by_hour_v.argmax()) in range(12, 19)  # the documented 15:00 UTC peak, give or take


def test_other_timeframes_stay_aligned_and_consistent() -> None:
    m = generate_market(["ETH/BTC"], 200, START_MS, timeframe_ms=86_400_000, seed=2)
    assert_ohlc_consistent(m["ETH/BTC"], 86_400_000)
    with pytest.raises(ValueError, match="aligned"):
        generate_market(["BTC/USDT"], 10, START_MS + 1)


# -- CSV format ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz"])
def test_generated_data_round_trips_through_csv_exactly(tmp_path: Path, name: str) -> None:
    s = generate_market(["XRP/USDT"], 500, START_MS, seed=9)["XRP/USDT"]
    path = tmp_path / name
    write_ohlcv_csv(path, s)
    back = load_ohlcv_csv(path)
    assert list(back.rows()) == list(s.rows())
    assert back.open_ms.dtype == np.int64
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            assert f.readline() == "open_time,open,high,low,close,volume\n"


def test_strings_are_kept_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1h.csv"
    path.write_text("open_time,open,high,low,close,volume\n"
                    "1546300800000,3701.23,3713.0,3689.88,3700.31,686.36742\n"
                    "1546304400000,3700.2,3702.73,3684.22,3689.69,0.00000000\n")
    s = load_ohlcv_csv(path)
    assert s.row(0) == (1546300800000, "3701.23", "3713.0", "3689.88", "3700.31", "686.36742")
    assert s.volume[1] == "0.00000000"
    assert s.slice(1).row(0) == s.row(1)


GOOD = "1546300800000,10,12,9,11,5"


@pytest.mark.parametrize(("body", "problem"), [
    ("open_time,open,high,low,close\n" + GOOD, "line 1: header"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546300800000,10,12,9,11,5", "line 3: open_time .* not after"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546300000000,10,12,9,11,5", "line 3: open_time .* not after"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400001,10,12,9,11,5", "line 3: .*not aligned"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,0,12,9,11,5", "line 3: open 0 is not a positive"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,-1,12,9,11,5", "line 3: open '-1'"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,1e3,12,9,11,5", "line 3: open '1e3'"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,nan,12,9,11,5", "line 3: open 'nan'"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,10,12,10.5,11,5", "line 3: low 10.5"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,10,10.9,9,11,5", "line 3: .*high 10.9"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,10,12,9,11,-5", "line 3: volume '-5'"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n1546304400000,10,12,9,11", "line 3: expected 6 fields"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\nabc,10,12,9,11,5", "line 3: open_time 'abc'"),
    ("open_time,open,high,low,close,volume\n", "no data rows"),
    (f"open_time,open,high,low,close,volume\n{GOOD}\n\n1546304400001,10,12,9,11,5", "line 4: .*not aligned"),
])
def test_bad_rows_are_refused_with_file_line_and_problem(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "BADUSDT-1h.csv"
    path.write_text(body + "\n")
    with pytest.raises(DataError, match=problem) as info:
        load_ohlcv_csv(path)
    assert str(path) in str(info.value)


def test_equal_floats_are_settled_in_decimal(tmp_path: Path) -> None:
    # Both round to the same double; only Decimal sees that low > open.
    path = tmp_path / "x.csv"
    path.write_text("open_time,open,high,low,close,volume\n"
                    "3600000,1.00000000000000000001,2,1.00000000000000000002,1.5,1\n")
    with pytest.raises(DataError, match="line 2: low"):
        load_ohlcv_csv(path)


def test_unreadable_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_ohlcv_csv(tmp_path / "missing.csv")
    bad_gz = tmp_path / "BTCUSDT-1h.csv.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        load_ohlcv_csv(bad_gz)


def test_timeframe_comes_from_the_file_name_or_the_argument(tmp_path: Path) -> None:
    rows = [(86_400_000 * i, "1", "1", "1", "1", "0") for i in range(1, 4)]
    write_ohlcv_csv(tmp_path / "ETHBTC-1d.csv", rows)
    assert len(load_ohlcv_csv(tmp_path / "ETHBTC-1d.csv")) == 3
    write_ohlcv_csv(tmp_path / "ETHBTC.csv", rows)
    assert len(load_ohlcv_csv(tmp_path / "ETHBTC.csv", timeframe_ms=86_400_000)) == 3
    hourly = [(H * i + 60_000, "1", "1", "1", "1", "0") for i in range(1, 4)]
    write_ohlcv_csv(tmp_path / "ETHBTC-1h.csv", hourly)
    with pytest.raises(DataError, match="aligned"):
        load_ohlcv_csv(tmp_path / "ETHBTC-1h.csv")


@pytest.mark.parametrize(("name", "symbol", "tf"), [
    ("BTCUSDT-1h.csv.gz", "BTC/USDT", "1h"),
    ("/a/b/ETHBTC-4h.csv", "ETH/BTC", "4h"),
    ("SOLFDUSD_1d.csv", "SOL/FDUSD", "1d"),
    ("DOGEUSDC.csv.gz", "DOGE/USDC", None),
    ("BNBETH-1h.csv", "BNB/ETH", "1h"),
    ("ADABNB-15m.csv", "ADA/BNB", "15m"),
])
def test_symbol_and_timeframe_from_file_names(name: str, symbol: str, tf: str | None) -> None:
    assert symbol_from_filename(name) == symbol
    assert timeframe_from_filename(name) == tf


@pytest.mark.parametrize("name", ["USDT-1h.csv", "BTCEUR-1h.csv", "btcusdt.txt"])
def test_file_names_without_a_known_market_are_refused(name: str) -> None:
    with pytest.raises(DataError, match="cannot infer a symbol"):
        symbol_from_filename(name)


def test_real_binance_files_load_and_validate() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present: real Binance data is only in the team workspace")
    path = SHARED_DATA / "ETHUSDT-1h.csv.gz"
    s = load_ohlcv_csv(path)
    assert symbol_from_filename(path) == "ETH/USDT"
    assert len(s) == 65_653
    assert s.row(0)[0] == 1_546_300_800_000
    with gzip.open(path, "rt") as f:
        f.readline()
        first = f.readline().strip().split(",")
    assert list(s.row(0)[1:]) == first[1:]
    assert_ohlc_consistent(s.slice(0, 500))


# -- edge: none on the random walk, a planted lead-lag on the other ---------------

def lag_regression(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OLS slope of y[t] on x[t−1] and its heteroskedasticity-robust (White) standard error.

    GARCH-t returns have no finite fourth moment, so the textbook 1/√n band is far too narrow."""
    xc = x[:-1] - x[:-1].mean()
    yc = y[1:] - y[1:].mean()
    sxx = float(xc @ xc)
    slope = float(xc @ yc) / sxx
    resid = yc - slope * xc
    return slope, float(np.sqrt(np.sum(xc**2 * resid**2)) / sxx)


def test_the_random_walk_has_no_predictable_mean(long_market: dict[str, Series]) -> None:
    """Every lag-1 regression (own and cross) is ~0: within 4 robust standard errors and below 0.05."""
    r = {sym: log_returns(s) for sym, s in long_market.items()}
    for a in r:
        for b in r:
            slope, se = lag_regression(r[a], r[b])
            assert abs(slope) < 4 * se and abs(slope) < 0.05, (a, b, slope, se)


def test_the_planted_lead_lag_coefficient_is_recovered_by_regression() -> None:
    n = 20_000
    m = generate_lead_lag_market(["BTC/USDT", "ETH/USDT"], n, START_MS, seed=11, beta=0.3)
    a, b = log_returns(m["BTC/USDT"]), log_returns(m["ETH/USDT"])
    slope, se = lag_regression(a, b)
    assert abs(slope - 0.3) < 4 * se and se < 0.03, (slope, se)
    # Nothing else is predictable: A does not follow B, and neither follows itself.
    for x, y in ((b, a), (a, a)):
        slope, se = lag_regression(x, y)
        assert abs(slope) < 4 * se and abs(slope) < 0.05, (slope, se)
    # The leader is the same random walk as in the plain market with the same seed.
    plain = generate_market(["BTC/USDT", "ETH/USDT"], n, START_MS, seed=11)
    assert list(plain["BTC/USDT"].rows()) == list(m["BTC/USDT"].rows())
    assert_ohlc_consistent(m["ETH/USDT"].slice(0, 4000))


def test_a_lead_lag_market_needs_two_symbols() -> None:
    with pytest.raises(ValueError, match="two symbols"):
        generate_lead_lag_market(["BTC/USDT"], 10, START_MS)


def test_a_flipped_lead_lag_changes_sign_at_flip_at_and_nothing_before() -> None:
    n, flip = 20_000, 10_000
    m = generate_lead_lag_market(["BTC/USDT", "ETH/USDT"], n, START_MS, seed=11, beta=0.3, flip_at=flip)
    same = generate_lead_lag_market(["BTC/USDT", "ETH/USDT"], n, START_MS, seed=11, beta=0.3)
    assert list(m["ETH/USDT"].slice(0, flip).rows()) == list(same["ETH/USDT"].slice(0, flip).rows())
    assert list(m["BTC/USDT"].rows()) == list(same["BTC/USDT"].rows())
    a, b = log_returns(m["BTC/USDT"]), log_returns(m["ETH/USDT"])
    before, se = lag_regression(a[:flip - 1], b[:flip - 1])
    after, se2 = lag_regression(a[flip - 1:], b[flip - 1:])
    assert abs(before - 0.3) < 4 * se and abs(after + 0.3) < 4 * se2, (before, after)
    assert_ohlc_consistent(m["ETH/USDT"].slice(flip - 10, flip + 10))
    with pytest.raises(ValueError, match="flip_at"):
        generate_lead_lag_market(["BTC/USDT", "ETH/USDT"], 10, START_MS, flip_at=10)
