"""Samples by time range: no target crosses the range's end, gaps drop windows, aligned samples line up."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_market import HOUR_MS, T0_MS, random_walk

from strategies.dataset import FeatureStore, MarketSeries, split_ms
from strategies.features import WARMUP, compute_features


def _store(*series, horizon=1):
    return FeatureStore(list(series), horizon=horizon)


def test_samples_inputs_and_targets_match_the_series():
    s = random_walk("BTC/USDT", 400, seed=1)
    store = _store(s, horizon=3)
    sc = store.fit_scaler(T0_MS, T0_MS + 300 * HOUR_MS)
    ds = store.dataset(T0_MS, T0_MS + 400 * HOUR_MS, 16, sc)
    t = int(ds.ends[10])
    np.testing.assert_array_equal(ds.x([10])[0], sc.transform(compute_features(s.ohlcv))[t - 15:t + 1])
    c = s.ohlcv[:, 3]
    expected = 100 * np.log(c[t + 1:t + 4] / c[t:t + 3])
    np.testing.assert_allclose(ds.y([10])[0], expected, rtol=1e-6)
    assert ds.ends[0] == WARMUP + 16 - 1            # first sample: window and warm-up just fit
    assert ds.ends[-1] == 400 - 3 - 1               # last sample: its 3 targets exist
    assert not np.isnan(ds.x()).any()


def test_targets_never_cross_the_range_end():
    s = random_walk("BTC/USDT", 500, seed=2)
    store = _store(s, horizon=4)
    sc = store.fit_scaler(T0_MS, T0_MS + 500 * HOUR_MS)
    end = T0_MS + 300 * HOUR_MS
    train = store.dataset(T0_MS, end, 8, sc)
    test = store.dataset(end, T0_MS + 500 * HOUR_MS, 8, sc)
    last_target_bar = train.open_ms[train.ends + 4]
    assert last_target_bar.max() < end
    assert train.decision_ms().max() == end - 5 * HOUR_MS
    assert test.decision_ms().min() >= end
    assert set(train.decision_ms()).isdisjoint(test.decision_ms())


def test_windows_crossing_a_gap_are_dropped():
    s = random_walk("BTC/USDT", 300, seed=3)
    ms = s.open_ms.copy()
    ms[150:] += 5 * HOUR_MS                          # five missing hours before bar 150
    gapped = MarketSeries("BTC/USDT", ms, s.ohlcv)
    store = _store(gapped)
    sc = store.fit_scaler(int(ms[0]), int(ms[-1]) + HOUR_MS)
    ds = store.dataset(int(ms[0]), int(ms[-1]) + HOUR_MS, 20, sc)
    ends = set(ds.ends.tolist())
    assert 148 in ends and 149 not in ends           # 149's target is across the gap
    assert not any(150 <= e < 150 + WARMUP + 20 - 1 for e in ends)
    assert 150 + WARMUP + 20 - 1 in ends


def test_pooled_samples_know_their_symbol():
    a, b = random_walk("BTC/USDT", 200, seed=4), random_walk("ETH/USDT", 250, seed=5)
    store = _store(a, b)
    sc = store.fit_scaler(T0_MS, T0_MS + 200 * HOUR_MS)
    ds = store.dataset(T0_MS, T0_MS + 300 * HOUR_MS, 10, sc)
    idx = ds.symbol_index()
    assert set(idx.tolist()) == {0, 1}
    assert (ds.close[ds.ends[idx == 1]] == b.ohlcv[ds.ends[idx == 1] - 200, 3]).all()


def test_aligned_samples_share_their_decision_bar():
    a = random_walk("BTC/USDT", 300, seed=6)
    b = random_walk("ETH/USDT", 260, seed=7, start_ms=T0_MS + 40 * HOUR_MS)
    store = _store(a, b)
    sc = store.fit_scaler(T0_MS, T0_MS + 300 * HOUR_MS)
    ds = store.dataset(T0_MS, T0_MS + 300 * HOUR_MS, 12, sc, aligned=True)
    assert ds.ends.shape[1] == 2 and len(ds) > 0
    np.testing.assert_array_equal(ds.open_ms[ds.ends[:, 0]], ds.open_ms[ds.ends[:, 1]])
    assert ds.x([0, 1]).shape == (2, 2, 12, 8) and ds.y([0]).shape == (1, 2, 1)
    assert ds.open_ms[ds.ends[0, 0]] == T0_MS + (40 + WARMUP + 11) * HOUR_MS


def test_split_points_are_consecutive_shares():
    store = _store(random_walk("BTC/USDT", 1000, seed=8))
    cuts = split_ms(store, [0.7, 0.3])
    assert cuts[0] == T0_MS and cuts[-1] == T0_MS + 1000 * HOUR_MS
    assert cuts[1] == T0_MS + 700 * HOUR_MS
    with pytest.raises(ValueError, match="add up"):
        split_ms(store, [0.5, 0.4])


def test_bad_series_are_refused_with_the_symbol_named():
    s = random_walk("BTC/USDT", 50, seed=9)
    bad = s.ohlcv.copy()
    bad[10, 3] = -1.0
    with pytest.raises(ValueError, match="BTC/USDT: prices"):
        MarketSeries("BTC/USDT", s.open_ms, bad)
    with pytest.raises(ValueError, match="ascending"):
        MarketSeries("BTC/USDT", s.open_ms[::-1].copy(), s.ohlcv)
    with pytest.raises(ValueError, match="twice"):
        FeatureStore([s, s])
