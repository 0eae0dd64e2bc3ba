"""The kline parser on real Binance message shapes and on every kind of bad input."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.binance import combined_stream_url, parse_kline_frame

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
    (frame(s="DOGEUSDT"), "unsubscribed symbol 'DOGEUSDT'"),
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
