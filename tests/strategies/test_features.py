"""Features: causal, identical over a window and over the whole history, normalised on training rows only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_market import random_walk

from strategies.features import CLIP, FEATURES, N_FEATURES, WARMUP, FeatureScaler, compute_features, next_returns_pct

SERIES = random_walk("BTC/USDT", 600, seed=3)


def test_shape_and_warmup_rows():
    f = compute_features(SERIES.ohlcv)
    assert f.shape == (600, N_FEATURES)
    assert np.isnan(f[:WARMUP]).all()
    assert np.isfinite(f[WARMUP:]).all()


def test_features_by_hand_at_one_bar():
    a = SERIES.ohlcv
    t = 300
    f = compute_features(a)[t]
    lc = np.log(a[:, 3])
    r = np.diff(lc)                      # r[j] is the return of bar j + 1
    last24 = r[t - 24:t]
    g, l_ = np.maximum(r[t - 14:t], 0).mean(), np.maximum(-r[t - 14:t], 0).mean()
    lv = np.log1p(a[:, 4])
    expected = {
        "ret": lc[t] - lc[t - 1],
        "range": np.log(a[t, 1] / a[t, 2]),
        "body": np.log(a[t, 3] / a[t, 0]),
        "vol_rel": lv[t] - lv[t - 23:t + 1].mean(),
        "mom_24": last24.mean(),
        "rv_24": np.sqrt((last24 ** 2).mean()),
        "rsi_14": (g - l_) / (g + l_),
        "macd": lc[t - 11:t + 1].mean() - lc[t - 25:t + 1].mean(),
    }
    for i, name in enumerate(FEATURES):
        assert f[i] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


@settings(max_examples=40, deadline=None)
@given(t=st.integers(WARMUP, 598), seed=st.integers(0, 10_000))
def test_no_look_ahead_changing_the_future_leaves_today_unchanged(t, seed):
    rng = np.random.default_rng(seed)
    before = compute_features(SERIES.ohlcv)
    changed = SERIES.ohlcv.copy()
    changed[t + 1:] *= rng.uniform(0.5, 2.0, size=(len(changed) - t - 1, 1))   # every later bar rescaled
    changed[t + 1:, 4] = rng.uniform(0, 1e6, size=len(changed) - t - 1)
    after = compute_features(changed)
    np.testing.assert_array_equal(after[:t + 1], before[:t + 1])
    assert not np.array_equal(after[t + 1:], before[t + 1:])


@settings(max_examples=30, deadline=None)
@given(end=st.integers(WARMUP + 10, 599), length=st.integers(WARMUP + 1, 300))
def test_window_features_are_bit_identical_to_full_history(end, length):
    """The engine computes features over its rolling window; training over the whole series."""
    start = max(0, end + 1 - length)
    full = compute_features(SERIES.ohlcv)
    window = compute_features(SERIES.ohlcv[start:end + 1])
    np.testing.assert_array_equal(window[WARMUP:], full[start + WARMUP:end + 1])


def test_batched_windows_equal_one_at_a_time():
    w = np.stack([SERIES.ohlcv[i:i + 200] for i in (0, 50, 300)])
    batched = compute_features(w)
    for k, i in enumerate((0, 50, 300)):
        np.testing.assert_array_equal(batched[k], compute_features(SERIES.ohlcv[i:i + 200]))


def test_flat_market_gives_zero_rsi_and_no_nan():
    a = np.ones((60, 5))
    f = compute_features(a)
    assert np.isfinite(f[WARMUP:]).all()
    assert (f[WARMUP:, FEATURES.index("rsi_14")] == 0).all()


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 5\)"):
        compute_features(np.ones((10, 4)))


def test_next_returns_pct_rows_hold_the_following_returns():
    close = np.array([100.0, 101.0, 99.0, 99.0])
    out = next_returns_pct(close, horizon=2)
    assert out[0, 0] == pytest.approx(100 * np.log(1.01))
    assert out[0, 1] == pytest.approx(100 * np.log(99 / 101))
    assert out[2, 0] == 0.0 and np.isnan(out[2, 1]) and np.isnan(out[3]).all()


def test_scaler_standardises_training_rows_and_clips():
    f = compute_features(SERIES.ohlcv)
    sc = FeatureScaler.fit(f[:400])
    z = sc.transform(f[WARMUP:400]).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.05)
    assert sc.transform(f).dtype == np.float32
    huge = f[WARMUP:WARMUP + 1] * 0 + sc.mean + 1e6 * sc.std
    assert (sc.transform(huge) == CLIP).all()
    again = FeatureScaler.from_lists(sc.to_lists())
    np.testing.assert_array_equal(again.transform(f), sc.transform(f))


def test_scaler_ignores_rows_after_its_range():
    f = compute_features(SERIES.ohlcv)
    g = f.copy()
    g[400:] *= 50.0
    assert FeatureScaler.fit(f[:400]).to_lists() == FeatureScaler.fit(g[:400]).to_lists()


def test_scaler_refuses_wrong_feature_count():
    with pytest.raises(ValueError, match="features"):
        FeatureScaler.from_lists({"mean": [0.0] * 3, "std": [1.0] * 3})
