"""The data pipeline (core.batching): each batch gathered, cast and standardized on its own
holds exactly the values a cast, standardized copy of the whole split held, and X itself is
never copied or written."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.batching import Rows, split_indices
from core.preprocessing import Preprocessing
from core.reproducibility import weights_sha256
from core.training import train

# (30, 3, 64, 64): a sample larger than NumPy's 8192-element cast buffer
SHAPES = [(1000, 1), (9, 1, 1, 1), (1000, 2), (301, 784), (200, 1, 8, 8), (57, 3, 5, 5),
          (4000, 16), (7, 5), (30, 3, 64, 64)]
DATA_DTYPES = ["uint8", "int8", "uint16", "int16", "float16", "float32", "float64"]


def _data(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = np.dtype(dtype).kind
    if kind in "iu":
        info = np.iinfo(dtype)
        X = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    else:
        X = (rng.standard_normal(shape) * 50 + 3).astype(dtype)
        X.reshape(len(X), -1)[::5, 0] = -0.0  # signed zeros survive the sums as in NumPy
    if X.ndim > 1 and X.size // len(X) > 1:
        X.reshape(len(X), -1)[:, -1] = X.reshape(len(X), -1)[0, -1]  # a constant feature
    return X


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64"])
@pytest.mark.parametrize("run_dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 5000])
def test_the_streaming_fit_is_numpys_fit_bit_for_bit(shape: tuple[int, ...], dtype: str,
                                                     run_dtype: str, chunk: int) -> None:
    X = _data(shape, dtype)
    cast = X.astype(run_dtype)
    want = Preprocessing.fit(cast, run_dtype)
    got = Preprocessing.fit_chunks(
        lambda: (cast[s:s + chunk] for s in range(0, len(cast), chunk)), run_dtype)
    assert got.mean.dtype == want.mean.dtype == np.dtype(run_dtype)
    assert got.mean.tobytes() == want.mean.tobytes()
    assert got.std.tobytes() == want.std.tobytes()


def test_the_streaming_fit_reads_reused_chunk_buffers_correctly() -> None:
    """Rows.chunks hands out one buffer again and again; the fit must not keep it."""
    for shape in [(500, 1), (500, 6)]:
        X = _data(shape, "uint8")
        rows = Rows(X, np.zeros(len(X)), np.arange(0, len(X), 2), np.float32)
        want = Preprocessing.fit(X[::2].astype(np.float32), np.float32)
        got = Preprocessing.fit_chunks(lambda rows=rows: rows.chunks(16), np.float32)
        assert got.mean.tobytes() == want.mean.tobytes()
        assert got.std.tobytes() == want.std.tobytes()


@pytest.mark.parametrize("dtype", DATA_DTYPES)
@pytest.mark.parametrize("run_dtype", ["float32", "float64"])
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("split", [0.0, 0.3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_hold_the_whole_cast_copys_values(dtype: str, run_dtype: str,
                                                  standardize: bool, split: float,
                                                  shuffle: bool) -> None:
    X = _data((103, 2, 3, 3), dtype)
    y = np.arange(103) % 4
    before = X.copy()
    train_idx, _ = split_indices(len(X), split, seed=3)
    # The loop before issue 18: one cast copy of the split, standardized in place.
    copy = np.take(X, train_idx, axis=0).astype(run_dtype)
    prep = Preprocessing.fit(copy, run_dtype) if standardize else None
    if prep is not None:
        prep.apply_inplace(copy)
    rows = Rows(X, y, train_idx, run_dtype, prep)
    order = np.random.default_rng(1).permutation(rows.n) if shuffle else None
    want_x = copy if order is None else copy[order]
    want_y = y[train_idx] if order is None else y[train_idx][order]
    seen = 0
    for epoch in range(2):  # the buffers are reused epoch after epoch
        for i, (xb, yb) in enumerate(rows.batches(10, order, start_batch=epoch)):
            start = (i + epoch) * 10
            assert xb.dtype == np.dtype(run_dtype) and xb.flags.c_contiguous
            assert xb.tobytes() == want_x[start:start + 10].tobytes(), (epoch, i)
            assert yb.tolist() == want_y[start:start + 10].tolist()
            seen += len(xb)
    assert seen == 2 * rows.n - 10
    assert X.tobytes() == before.tobytes()  # never written


def test_rows_needing_no_gather_cast_or_standardization_are_views_of_X() -> None:
    X = _data((50, 4), "float32")
    rows = Rows(X, np.zeros(50), np.arange(50), np.float32)
    xb, _ = next(rows.batches(16))
    assert np.shares_memory(xb, X)
    # any other dtype, a standardization or a split gathers into the run's own buffer
    for other in (Rows(X, np.zeros(50), np.arange(50), np.float64),
                  Rows(X, np.zeros(50), np.arange(50), np.float32,
                       Preprocessing.fit(X, np.float32)),
                  Rows(X, np.zeros(50), np.arange(0, 50, 2), np.float32),
                  Rows(np.asfortranarray(X), np.zeros(50), np.arange(50), np.float32)):
        xb, _ = next(other.batches(16))
        assert not np.shares_memory(xb, X) and xb.flags.c_contiguous


SPEC: dict[str, Any] = {
    "model": {"layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"}, {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 4}]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 3, "batch_size": 12, "seed": 4, "validation_split": 0.2,
                 "shuffle": True},
}


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("run_dtype", ["float32", "float64"])
@pytest.mark.parametrize("standardize", [True, False])
def test_integer_images_train_bit_identically_to_their_float_copy(
        dtype: str, run_dtype: str, standardize: bool) -> None:
    X = _data((70, 1, 6, 6), dtype, seed=2)
    y = np.random.default_rng(2).integers(0, 4, 70)
    spec = {**SPEC, "training": {**SPEC["training"], "dtype": run_dtype,
                                 "standardize": standardize}}
    if not standardize:  # unscaled 16-bit counts would overflow the first step
        spec["optimizer"] = {"type": "adam", "learning_rate": 1e-6}
    narrow = train(spec, X, y)
    wide = train(spec, X.astype(run_dtype), y)
    assert weights_sha256(narrow.checkpoint()) == weights_sha256(wide.checkpoint())
    drop = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert drop(narrow.history) == drop(wide.history)
