"""Batch scoring's chunks: the dataset's rows from any start, in order, as views (no copy)."""

from __future__ import annotations

import numpy as np
import pytest

from worker.batch_scoring import array_chunks

X = np.random.default_rng(0).normal(size=(1000, 7))


@pytest.mark.parametrize("stored", [X, np.asfortranarray(X), X.astype(np.uint8)],
                         ids=["C order", "Fortran order", "uint8"])
@pytest.mark.parametrize(("start", "size"), [(0, 128), (256, 128), (300, 128), (0, 1000),
                                             (0, 4096), (999, 64), (1000, 64)])
def test_rows_come_in_order_from_any_start(stored: np.ndarray, start: int, size: int) -> None:
    chunks = list(array_chunks(stored, start, size))
    assert all(len(c) == size for c in chunks[:-1])
    assert all(np.shares_memory(c, stored) for c in chunks)  # views: nothing copied
    got = np.concatenate(chunks) if chunks else stored[:0]
    assert got.dtype == stored.dtype
    np.testing.assert_array_equal(got, stored[start:])


def test_image_rows_keep_their_shape() -> None:
    images = np.arange(50 * 2 * 3 * 3, dtype=np.float32).reshape(50, 2, 3, 3)
    chunks = list(array_chunks(images, 10, 16))
    assert [c.shape for c in chunks] == [(16, 2, 3, 3), (16, 2, 3, 3), (8, 2, 3, 3)]
    np.testing.assert_array_equal(np.concatenate(chunks), images[10:])
