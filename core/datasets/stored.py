"""A stored dataset's bytes: its arrays as `.npy` files one after the other, X then y.

Why this layout (issue 18): a dataset used to be one compressed npz value, so every job start
read the whole value into one bytes object, then inflated it into a second copy (a 188 MB
upload: 0.5-0.9 s). Plain `.npy` frames need no inflating and say their own dtype and shape,
so a reader allocates each array once and the stored parts are copied straight into its memory
(`from_buffer` makes the arrays views of the one buffer the parts were read into). Any dtype
NumPy writes without pickle is kept as it came (uint8 images stay uint8).

Each frame is NumPy's own `.npy` format (`numpy.lib.format`), so the bytes of one array are
what `np.save` writes; the header is padded so that the data starts at a multiple of
`ALIGN` bytes from the frame's start, and frames are padded to `ALIGN` too, so that every
array in a buffer NumPy allocated is aligned for its dtype.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from core.errors import DatasetError

# NumPy aligns `.npy` data at 64 bytes (numpy.lib.format.ARRAY_ALIGN); so are the frames.
ALIGN = 64
NAMES = ("X", "y")


def read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran_order, dtype) from an `.npy` file positioned at its start, leaving it
    at the data; ValueError if it is not one (NumPy's own reader, either header version)."""
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(f)
    return shape, fortran, dtype


def _header(array: np.ndarray) -> bytes:
    header = np.lib.format.header_data_from_array_1_0(array)
    out = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(out, header)
    except ValueError:  # a header over 64 KiB (a shape of very many dimensions)
        out = io.BytesIO()
        np.lib.format.write_array_header_2_0(out, header)
    return out.getvalue()


def frames(arrays: Sequence[np.ndarray]) -> Iterator[memoryview]:
    """The stored bytes of `arrays`, in order, as views of each header and of each array's own
    memory (no copy of the data); C-contiguous arrays are framed as they are."""
    for array in arrays:
        if array.dtype.hasobject:
            raise DatasetError(f"an array of dtype {array.dtype} cannot be stored", "file")
        array = np.ascontiguousarray(array)
        header = _header(array)
        yield memoryview(header)
        data = array.reshape(-1).data.cast("B") if array.size else memoryview(b"")
        yield data
        pad = -(len(header) + data.nbytes) % ALIGN
        if pad:
            yield memoryview(bytes(pad))


def framed_size(arrays: Sequence[np.ndarray]) -> int:
    """len(b"".join(frames(arrays))), without joining."""
    return sum(view.nbytes for view in frames(arrays))


def from_buffer(buffer: np.ndarray, count: int = len(NAMES)) -> list[np.ndarray]:
    """The `count` arrays framed in `buffer` (a 1-D uint8 array), as views into it.

    A frame that does not parse, runs past the buffer or holds objects is a DatasetError:
    the stored bytes were damaged, and nothing is unpickled.
    """
    arrays, offset = [], 0
    for _ in range(count):
        stream = io.BytesIO(buffer[offset:offset + 65536 + 12].tobytes())
        try:
            shape, fortran, dtype = read_npy_header(stream)
        except ValueError as exc:
            raise DatasetError(f"the stored dataset is damaged: {exc}", "dataset") from None
        if dtype.hasobject:
            raise DatasetError("the stored dataset holds objects; refused", "dataset")
        start = offset + stream.tell()
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if start + nbytes > buffer.size:
            raise DatasetError("the stored dataset is shorter than its headers say", "dataset")
        flat = buffer[start:start + nbytes].view(dtype)
        arrays.append(flat.reshape(shape, order="F" if fortran else "C"))
        offset = start + nbytes
        offset += -offset % ALIGN
    return arrays


def load(read_into: Callable[[Callable[[int], memoryview]], object]
         ) -> tuple[np.ndarray, np.ndarray] | None:
    """(X, y) of a stored dataset, or None if `read_into` finds none.

    `read_into(allocate)` is the store's reader (store.datasets.read_into with its session and
    ids bound): it asks `allocate(size)` for memory once, copies the stored parts into it and
    returns None if there is nothing stored. The arrays are views of that one allocation, so
    the dataset is in memory once, in the dtype it was stored in.
    """
    landing: list[np.ndarray] = []

    def allocate(size: int) -> memoryview:
        landing.append(np.empty(size, dtype=np.uint8))
        return landing[-1].data

    if read_into(allocate) is None:
        return None
    X, y = from_buffer(landing[0])
    return X, y
