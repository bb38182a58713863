"""worker/batch_scoring.py reads a dataset's rows a chunk at a time: in order, from any row
(a resumed batch), whatever the stored order, without ever holding the whole X."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import tracemalloc
from collections.abc import Generator

import numpy as np
import pytest

from worker.batch_scoring import BatchInputError, array_chunks, npz_chunks, read_ahead


def npz(X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=X, y=np.zeros(len(X)))
    return buffer.getvalue()


X = np.random.default_rng(0).normal(size=(1000, 7))


@pytest.mark.parametrize("stored", [X, np.asfortranarray(X), X.astype(np.uint8)],
                         ids=["C order", "Fortran order", "uint8"])
@pytest.mark.parametrize(("start", "size"), [(0, 128), (256, 128), (300, 128), (0, 1000),
                                             (0, 4096), (999, 64), (1000, 64)])
def test_rows_come_in_order_from_any_start(stored: np.ndarray, start: int, size: int) -> None:
    chunks = [c.copy() for c in npz_chunks(npz(stored), start, size)]  # buffers are reused
    assert all(len(c) == size for c in chunks[:-1])
    got = np.concatenate(chunks) if chunks else stored[:0]
    assert got.dtype == stored.dtype
    np.testing.assert_array_equal(got, stored[start:])
    views = list(array_chunks(stored, start, size))
    assert [len(v) for v in views] == [len(c) for c in chunks]


def test_image_rows_keep_their_shape() -> None:
    images = np.arange(50 * 2 * 3 * 3, dtype=np.float32).reshape(50, 2, 3, 3)
    chunks = [c.copy() for c in npz_chunks(npz(images), 10, 16)]
    assert [c.shape for c in chunks] == [(16, 2, 3, 3), (16, 2, 3, 3), (8, 2, 3, 3)]
    np.testing.assert_array_equal(np.concatenate(chunks), images[10:])


def test_reading_holds_one_chunk_never_the_whole_x() -> None:
    big = np.resize(np.arange(64 * 997, dtype=np.float64) % 17, (100_000, 64))  # 49 MiB
    blob = npz(big)
    tracemalloc.start()
    try:
        rows = 0
        for chunk in npz_chunks(blob, 0, 4096):
            rows += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == len(big)
    # one chunk (2 MiB), the bytes zipfile read for it, the inflater's state
    assert peak < big.nbytes / 4, f"peak {peak} bytes while reading {big.nbytes} bytes of X"


def test_read_ahead_keeps_the_order_and_the_ring_keeps_each_chunk_intact() -> None:
    blob = npz(X)
    seen = []
    for chunk in read_ahead(npz_chunks(blob, 100, 64, buffers=3), depth=1):
        snapshot = chunk.copy()
        time.sleep(0.001)  # the reader runs ahead meanwhile: it must not write this buffer
        np.testing.assert_array_equal(chunk, snapshot)
        seen.append(snapshot)
    np.testing.assert_array_equal(np.concatenate(seen), X[100:])


def test_read_ahead_raises_the_readers_error_in_the_consumer() -> None:
    def broken() -> Generator[np.ndarray, None, None]:
        yield X[:2]
        raise BatchInputError("the stored rows end early")

    chunks = read_ahead(broken())
    assert len(next(chunks)) == 2
    with pytest.raises(BatchInputError, match="end early"):
        next(chunks)


def test_closing_read_ahead_early_stops_its_thread() -> None:
    before = threading.active_count()
    with contextlib.closing(read_ahead(array_chunks(X, 0, 10))) as chunks:
        next(chunks)
    assert threading.active_count() == before
