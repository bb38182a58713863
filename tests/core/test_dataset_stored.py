"""core.datasets.stored: a dataset's arrays as .npy frames and back, any dtype, as views."""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.datasets import stored
from core.errors import DatasetError

CASES = [
    (np.arange(6 * 5, dtype=np.uint8).reshape(6, 5), np.array([1, 0, 2, 1, 0, 2])),
    (np.arange(24, dtype=np.int8).reshape(2, 3, 2, 2), np.array([0.5, -1.0])),
    (np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(3, 4)), np.arange(3)),
    (np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32), np.zeros((7, 2))),
    (np.zeros((0, 4), np.float64), np.zeros(0, np.int64)),
]


def buffer_of(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(stored.framed_size(arrays), np.uint8)
    offset = 0
    for view in stored.frames(arrays):
        out[offset:offset + view.nbytes] = np.frombuffer(view, np.uint8)
        offset += view.nbytes
    assert offset == out.size
    return out


@pytest.mark.parametrize("X, y", CASES)
def test_arrays_come_back_equal_in_their_dtype_as_aligned_views(X: np.ndarray,
                                                                 y: np.ndarray) -> None:
    buffer = buffer_of([X, y])
    assert buffer.size % stored.ALIGN == 0
    back = stored.from_buffer(buffer)
    for got, want in zip(back, (X, y), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
        assert got.flags.aligned and (got.base is buffer or got.size == 0
                                      or np.shares_memory(got, buffer))
    # the first frame is what np.save writes for X: the format is NumPy's own
    saved = io.BytesIO()
    np.save(saved, np.ascontiguousarray(X))  # frames are C order
    assert buffer[:len(saved.getvalue())].tobytes() == saved.getvalue()


def test_frames_are_views_of_the_arrays_memory() -> None:
    X = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    views = list(stored.frames([X, np.arange(100)]))
    assert np.shares_memory(np.frombuffer(views[1], np.float32), X)


def test_load_fills_one_allocation_through_the_readers_callback() -> None:
    X, y = CASES[0]
    whole = buffer_of([X, y]).tobytes()

    def read_into(allocate: object) -> memoryview:
        view = allocate(len(whole))  # type: ignore[operator]
        view[:] = whole
        return view

    got = stored.load(read_into)
    assert got is not None and np.array_equal(got[0], X) and np.array_equal(got[1], y)
    assert stored.load(lambda allocate: None) is None


def test_damaged_or_pickled_bytes_are_refused() -> None:
    X, y = CASES[3]
    buffer = buffer_of([X, y])
    with pytest.raises(DatasetError, match="damaged"):
        stored.from_buffer(np.frombuffer(b"not a frame" * 10, np.uint8).copy())
    with pytest.raises(DatasetError, match="shorter"):
        stored.from_buffer(buffer[:200].copy())
    with pytest.raises(DatasetError, match="cannot be stored"):
        list(stored.frames([np.array([{}], dtype=object)]))
    objects = bytearray(buffer.tobytes())
    start = objects.index(b"'<f4'")
    objects[start:start + 5] = b"'|O' "
    with pytest.raises(DatasetError):
        stored.from_buffer(np.frombuffer(bytes(objects), np.uint8).copy())
