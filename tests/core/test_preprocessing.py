"""Standardization: statistics per feature, zero std kept finite, the run dtype kept."""

from __future__ import annotations

import numpy as np
import pytest

from core.preprocessing import Preprocessing


def test_fit_gives_population_mean_and_std_per_feature() -> None:
    X = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    prep = Preprocessing.fit(X, np.float64)
    np.testing.assert_array_equal(prep.mean, [3.0, 10.0])
    # ddof=0: sqrt(((1-3)^2 + 0 + (5-3)^2) / 3); the constant column gets std 1, not 0
    np.testing.assert_allclose(prep.std, [np.sqrt(8.0 / 3.0), 1.0], rtol=0, atol=1e-15)
    out = prep.apply(X)
    np.testing.assert_allclose(out[:, 0], [-1.224744871391589, 0.0, 1.224744871391589],
                               rtol=1e-15)
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0, 0.0])


def test_float32_stays_float32_and_statistics_accumulate_in_float64() -> None:
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((10_000, 3)) * 1e-3 + 1e4).astype(np.float32)
    prep = Preprocessing.fit(X, np.float32)
    assert prep.mean.dtype == np.float32 and prep.std.dtype == np.float32
    exact = X.astype(np.float64).mean(axis=0)
    np.testing.assert_array_equal(prep.mean, exact.astype(np.float32))
    out = prep.apply(X)
    assert out.dtype == np.float32
    # float64 input is cast to the statistics' dtype, not promoted
    assert prep.apply(X.astype(np.float64)).dtype == np.float32


def test_image_statistics_are_per_pixel_and_broadcast_over_missing_channel_axis() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((50, 1, 4, 4))
    prep = Preprocessing.fit(X, np.float64)
    assert prep.mean.shape == (1, 4, 4)
    np.testing.assert_allclose(prep.mean[0, 2, 3], X[:, 0, 2, 3].mean(), rtol=1e-14)
    with_channel = prep.apply(X)
    without_channel = prep.apply(X[:, 0])
    assert without_channel.shape == (50, 4, 4)
    np.testing.assert_array_equal(with_channel[:, 0], without_channel)


def test_round_trip_through_npz_entries() -> None:
    prep = Preprocessing(np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0], np.float32))
    arrays = prep.to_arrays()
    assert sorted(arrays) == ["__input_mean__", "__input_std__"]
    back = Preprocessing.from_arrays(arrays)
    assert back is not None
    np.testing.assert_array_equal(back.apply(np.array([[4.0, 10.0]])), [[1.0, 2.0]])
    assert Preprocessing.from_arrays({}) is None


def test_mismatched_shapes_and_empty_fit_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        Preprocessing(np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="zero rows"):
        Preprocessing.fit(np.zeros((0, 2)))


def test_apply_inplace_rounds_exactly_like_apply() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 5)).astype(np.float32) * 3 + 7
    prep = Preprocessing.fit(X, np.float32)
    expected = prep.apply(X)
    work = X.copy()
    assert prep.apply_inplace(work) is work
    assert work.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="float32"):
        prep.apply_inplace(X.astype(np.float64))


def test_a_std_too_small_for_float32_becomes_one() -> None:
    X = np.array([[0.0], [1e-50]])
    prep = Preprocessing.fit(X, np.float32)
    assert prep.std[0] == 1.0
    assert np.isfinite(prep.apply(X)).all()
