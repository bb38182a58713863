"""Input standardization, fitted on the training rows only and kept with the model.

Statistics are per feature of one sample, i.e. over the flattened input: an image input
(C, H, W) gets a mean and std per pixel and channel, the same way scikit-learn's
StandardScaler treats a flattened image. That keeps ``(x - mean) / std`` a plain broadcast a
user can apply with NumPy alone from ``weights.npz`` (docs/checkpoint-format.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

Array = NDArray[Any]
MEAN_KEY = "__input_mean__"  # the names of the statistics in weights.npz
STD_KEY = "__input_std__"


class Preprocessing:
    """``apply(X) = (X - mean) / std``, mean and std shaped like one sample, in the run dtype.

    Parameters
    ----------
    mean, std : ndarray, shape (*sample_shape,)
        A std of 0 (a constant feature) must already be replaced by 1 (see :meth:`fit`).
    """

    def __init__(self, mean: Array, std: Array) -> None:
        self.mean = np.asarray(mean)
        self.std = np.asarray(std)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean shape {self.mean.shape} != std shape {self.std.shape}")

    @classmethod
    def fit(cls, X: Array, dtype: DTypeLike = np.float32) -> Preprocessing:
        """Fit on training rows X (N, *sample_shape); population std (ddof=0), 0 -> 1.

        Accumulates in float64 whatever the run dtype, so a float32 run's statistics are
        correctly rounded; the stored arrays are cast to ``dtype`` once.
        """
        X = np.asarray(X)
        if X.shape[0] == 0:
            raise ValueError("cannot fit standardization on zero rows")
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        # A constant feature would divide by zero; leaving it centred (at 0) is what
        # StandardScaler and Keras' Normalization do. Checked after the cast too: a float64
        # std below float32's range rounds to 0.
        std_cast = std.astype(dtype)
        std_cast[std_cast == 0.0] = 1.0
        return cls(mean.astype(dtype), std_cast)

    @classmethod
    def fit_chunks(cls, chunks: Callable[[], Iterable[Array]], dtype: DTypeLike = np.float32
                   ) -> Preprocessing:
        """:meth:`fit` on the rows that ``chunks()`` yields in order (run-dtype arrays of
        consecutive rows), without ever holding them all: bit for bit the same statistics.

        ``chunks`` is called twice: NumPy's mean and std are two passes (the sum, then the
        sum of squared deviations from the mean), each a float64 sum over the rows taken one
        row after the other when a sample has several values. Each chunk is added below a
        carried row of the sums so far, so one sum over all chunks is that same sequence of
        additions. A sample of one value is summed pairwise by NumPy instead: those rows are
        a single column, small enough to be joined and fitted by :meth:`fit` itself.
        """
        first = iter(chunks())
        head = next(first, None)
        if head is None:
            raise ValueError("cannot fit standardization on zero rows")
        if math.prod(head.shape[1:]) == 1:
            # Copies: a chunk may be a buffer that the next chunk overwrites.
            return cls.fit(np.concatenate([head.copy(), *(c.copy() for c in first)]), dtype)
        n, total = _carried_sum(head, first, None)
        mean = total / n
        _, squares = _carried_sum(None, chunks(), mean)
        std = np.sqrt(squares / n)
        std_cast = std.astype(dtype)
        std_cast[std_cast == 0.0] = 1.0
        return cls(mean.astype(dtype), std_cast)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the statistics (the run dtype)."""
        return self.mean.dtype

    def apply(self, X: Array) -> Array:
        """(N, *sample_shape) -> standardized copy (N, *sample_shape) in the statistics' dtype.

        Inputs given as (N, H, W) for a (1, H, W) sample broadcast as well.
        """
        # (N, H, W) against (1, H, W) statistics broadcasts as it should: no special case.
        out = np.asarray(X, dtype=self.mean.dtype)
        result: Array = (out - self.mean) / self.std
        return result

    def apply_inplace(self, X: Array) -> Array:
        """:meth:`apply` into ``X`` itself (same rounding), for a training copy we own.

        ``X`` must already have the statistics' dtype; returns ``X``.
        """
        if X.dtype != self.mean.dtype:
            raise ValueError(f"apply_inplace needs {self.mean.dtype} input, got {X.dtype}")
        X -= self.mean
        X /= self.std
        return X

    def to_arrays(self) -> dict[str, Array]:
        """The two ``weights.npz`` entries."""
        return {MEAN_KEY: self.mean, STD_KEY: self.std}

    @classmethod
    def from_arrays(cls, arrays: Any) -> Preprocessing | None:
        """Read ``__input_mean__``/``__input_std__`` back from an npz mapping, if present."""
        if MEAN_KEY not in arrays or STD_KEY not in arrays:
            return None
        return cls(np.asarray(arrays[MEAN_KEY]), np.asarray(arrays[STD_KEY]))


def _carried_sum(head: Array | None, rest: Iterable[Array], mean: Array | None
                 ) -> tuple[int, Array]:
    """(rows, float64 sum over the rows) of ``head`` then ``rest``; with ``mean``, the sum of
    squared deviations ``(x - mean) ** 2`` instead, formed as ``np.var`` forms them."""
    n = 0
    total: Array | None = None
    buf: Array | None = None
    for chunk in itertools.chain([] if head is None else [head], rest):
        rows = int(chunk.shape[0])
        if buf is None or buf.shape[0] < rows + 1:
            buf = np.empty((rows + 1, *chunk.shape[1:]), dtype=np.float64)
        block = buf[:rows + 1]
        if mean is None or chunk.dtype != np.float64:
            # Widened exactly, as np.var's mixed-dtype ``x - mean`` widens x: subtracting
            # float64 from float64 then skips the ufunc's buffered cast (a 64-row float32
            # chunk minus a float64 mean: 54 us against 14 + 10 us).
            block[1:] = chunk
            chunk = block[1:]
        if mean is not None:
            np.subtract(chunk, mean, out=block[1:])
            np.square(block[1:], out=block[1:])
        if total is None:  # NumPy's sum starts from the first row (a -0.0 stays -0.0)
            total = np.add.reduce(block[1:], axis=0)
        else:
            block[0] = total
            total = np.add.reduce(block, axis=0)
        n += rows
    if total is None:
        raise ValueError("cannot fit standardization on zero rows")
    return n, total
