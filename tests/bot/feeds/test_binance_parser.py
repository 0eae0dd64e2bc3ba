"""The kline parser on real Binance message shapes and on every kind of bad input."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.binance import (
    EARLIEST_OPEN_MS,
    candle_from_fields,
    combined_stream_url,
    parse_kline_frame,
    reason_kind,
    validate_candle_fields,
)

SUBSCRIBED = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}
H = 3_600_000

# A closed 1h kline as Binance's combined stream sends it (all fields of the documented payload).
CLOSED = {
    "stream": "btcusdt@kline_1h",
    "data": {
        "e": "kline", "E": 1700003600012, "s": "BTCUSDT",
        "k": {"t": 1700000000000 - 1700000000000 % H, "T": 1700000000000 - 1700000000000 % H + H - 1,
              "s": "BTCUSDT", "i": "1h", "f": 3281744561, "L": 3281790123,
              "o": "36512.01000000", "c": "36590.40000000", "h": "36650.00000000", "l": "36480.55000000",
              "v": "812.44310000", "n": 45563, "x": True, "q": "29701871.92040000",
              "V": "401.11200000", "Q": "14664011.33600000", "B": "0"},
    },
}


def frame(**k_changes: object) -> str:
    msg = copy.deepcopy(CLOSED)
    for key, value in k_changes.items():
        if value is ...:
            del msg["data"]["k"][key]
        else:
            msg["data"]["k"][key] = value
    return json.dumps(msg)


def parse(raw: str | bytes) -> object:
    return parse_kline_frame(raw, SUBSCRIBED, "1h", H)


def test_closed_kline_becomes_a_candle_with_exact_decimals() -> None:
    p = parse(json.dumps(CLOSED))
    assert p.status == "closed"
    c = p.candle
    k = CLOSED["data"]["k"]
    assert c.symbol == "BTC/USDT"
    assert (c.open_ms, c.close_ms) == (k["t"], k["T"])
    assert c.open == Decimal(k["o"]) and c.close == Decimal(k["c"])
    assert c.high == Decimal(k["h"]) and c.low == Decimal(k["l"]) and c.volume == Decimal(k["v"])


def test_bytes_frames_parse_too() -> None:
    assert parse(json.dumps(CLOSED).encode()).status == "closed"


def test_raw_single_stream_event_without_wrapper() -> None:
    assert parse(json.dumps(CLOSED["data"])).status == "closed"


def test_intra_bar_update_is_ignored() -> None:
    p = parse(frame(x=False))
    assert p.status == "ignored" and p.candle is None and "intra-bar" in p.reason


@pytest.mark.parametrize("raw, reason", [
    ('{"result": null, "id": 1}', "subscription reply"),
    ('{"e": "24hrTicker", "s": "BTCUSDT"}', "not a kline"),
])
def test_non_kline_frames_are_ignored(raw: str, reason: str) -> None:
    p = parse(raw)
    assert p.status == "ignored" and reason in p.reason


@pytest.mark.parametrize("raw, reason", [
    ("{not json", "malformed JSON"),
    (b"\xff\xfe\x00", "malformed JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    ('{"stream": "btcusdt@kline_1h", "data": 5}', "data must be an object"),
    ('{"stream": "btcusdt@kline_1h", "data": {"e": "kline", "k": 7}}', "field k"),
    (frame(c=...), "missing field(s) c"),
    (frame(t=..., x=...), "missing field(s) t, x"),
    (frame(o="abc"), "k.o='abc' is not a number"),
    (frame(h="NaN"), "not finite"),
    (frame(l="-Infinity"), "not finite"),
    (frame(c="1e400"), "plausible range"),
    (frame(o=None), "decimal string"),
    (frame(v=[1]), "decimal string"),
    (frame(o="-1", l="-2"), "non-positive price"),
    (frame(v="-0.5"), "negative volume"),
    (frame(h="36000", l="36480.55"), "inconsistent prices"),
    (frame(h="36550"), "inconsistent prices"),        # high below the close
    (frame(l="36600"), "inconsistent prices"),        # low above the open
    (frame(s="DOGEUSDT"), "unsubscribed symbol: 'DOGEUSDT'"),
    (frame(i="1m"), "interval '1m'"),
    (frame(t="1700000000000"), "k.t must be an integer"),
    (frame(T=True), "k.T must be an integer"),
    (frame(t=10**16), "plausible"),
    (frame(t=CLOSED["data"]["k"]["t"] + 1), "not aligned"),
    (frame(T=CLOSED["data"]["k"]["T"] + 60_000), "does not end"),
    (frame(x="true"), "true or false"),
    (frame(o="1" * 50), "characters long"),
])
def test_bad_frames_are_rejected_with_a_reason(raw: str | bytes, reason: str) -> None:
    p = parse(raw)
    assert p.status == "rejected"
    assert p.candle is None
    assert reason in p.reason


def test_stream_name_must_match_the_symbol() -> None:
    msg = copy.deepcopy(CLOSED)
    msg["stream"] = "ethusdt@kline_1h"
    p = parse(json.dumps(msg))
    assert p.status == "rejected" and "does not match" in p.reason


def test_combined_stream_url() -> None:
    url = combined_stream_url("wss://stream.binance.com:9443/stream", ["BTC/USDT", "ETH/USDT"], "1h")
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@kline_1h/ethusdt@kline_1h"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["t", "T", "s", "i", "o", "c", "h", "l", "v", "x"]), value=json_values)
def test_any_value_in_any_field_never_crashes(field: str, value: object) -> None:
    raw = frame(**{field: value}) if value == value else frame(**{field: "nan"})
    p = parse(raw)
    assert p.status in ("closed", "ignored", "rejected")
    if p.status == "closed":
        c = p.candle
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high and c.volume >= 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    assert parse(raw).status in ("ignored", "rejected")


# -- the shared candle rules ---------------------------------------------------------------

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
GOOD = (T0, T0 + H - 1, "100.5", "101", "99", "100", "3.2")


def test_valid_fields_pass_and_build_an_exact_candle() -> None:
    assert validate_candle_fields(*GOOD, H) is None
    c = candle_from_fields("BTC/USDT", *GOOD, H)
    assert not isinstance(c, str)
    assert (c.open, c.high, c.low, c.close, c.volume) == tuple(Decimal(x) for x in GOOD[2:])
    assert validate_candle_fields(T0, None, 1, 2.5, 0.5, 1, 0, H) is None  # ints, floats, implied close
    assert candle_from_fields("X/Y", T0, None, 0.1, 0.1, 0.1, 0.1, 0, H).open == Decimal("0.1")


@pytest.mark.parametrize(("change", "kind"), [
    ({0: "1704067200000"}, "bad timestamp"),
    ({0: 1.7e12}, "bad timestamp"),
    ({0: True}, "bad timestamp"),
    ({1: T0 + H - 2}, "misaligned time"),
    ({0: T0 + 1}, "misaligned time"),
    ({1: T0 + H}, "misaligned time"),
    ({0: EARLIEST_OPEN_MS - H, 1: EARLIEST_OPEN_MS - 1}, "timestamp out of range"),
    ({2: "1_000"}, "bad number"),
    ({2: " 100"}, "bad number"),
    ({2: "0x10"}, "bad number"),
    ({2: ""}, "bad number"),
    ({2: float("nan")}, "bad number"),
    ({3: float("inf")}, "bad number"),
    ({4: "1e-20"}, "bad number"),
    ({6: "1e16"}, "bad number"),
    ({6: [1]}, "bad number"),
    ({2: "0", 4: "0"}, "non-positive price"),
    ({6: "-0.1"}, "negative volume"),
    ({3: "99.5"}, "inconsistent prices"),
])
def test_each_rule_rejects_with_its_kind(change: dict[int, object], kind: str) -> None:
    fields = list(GOOD)
    for i, v in change.items():
        fields[i] = v
    reason = validate_candle_fields(*fields, H)
    assert reason is not None and reason_kind(reason) == kind
    assert candle_from_fields("BTC/USDT", *fields, H) == reason


def test_open_times_too_far_in_the_future_are_out_of_range() -> None:
    now = T0 + 30 * 60_000
    assert validate_candle_fields(T0 + 2 * H, T0 + 3 * H - 1, *GOOD[2:], H, now_ms=now) is None
    reason = validate_candle_fields(T0 + 3 * H, T0 + 4 * H - 1, *GOOD[2:], H, now_ms=now)
    assert reason is not None and reason.startswith("timestamp out of range")
    assert validate_candle_fields(T0 + 3 * H, T0 + 4 * H - 1, *GOOD[2:], H) is None  # no clock, no check
    p = parse_kline_frame(frame(t=T0 + 5 * H, T=T0 + 6 * H - 1), SUBSCRIBED, "1h", H, now_ms=now)
    assert p.status == "rejected" and p.kind == "timestamp out of range"


def test_weekly_bars_open_on_mondays_as_on_binance() -> None:
    week = 7 * 86_400_000
    assert validate_candle_fields(T0, T0 + week - 1, *GOOD[2:], week) is None  # Monday 2024-01-01
    thursday = T0 - 4 * 86_400_000
    reason = validate_candle_fields(thursday, thursday + week - 1, *GOOD[2:], week)
    assert reason is not None and "not aligned" in reason


def test_server_shutdown_is_its_own_status() -> None:
    assert parse('{"e":"serverShutdown","E":1700000000000}').status == "shutdown"
    wrapped = json.dumps({"stream": "btcusdt@kline_1h", "data": {"e": "serverShutdown", "E": 1}})
    assert parse(wrapped).status == "shutdown"


def test_every_rejection_reason_has_a_short_kind() -> None:
    for raw in ("{", "[]", '{"e":"kline","k":1}', frame(c=...), frame(s="X"), frame(i="1m"), frame(x=1),
                frame(t="x"), frame(o="x"), frame(v="-1"), frame(h="1")):
        p = parse(raw)
        assert p.status == "rejected" and 3 <= len(p.kind) <= 30 and p.reason.startswith(p.kind + ": ")


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    assert parse("[" * 100_000 + "]" * 100_000).status == "rejected"
