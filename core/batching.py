"""Splitting a data set for validation and cutting an epoch into (shuffled) mini-batches.

Nothing here copies the data set. A run's training and validation rows are :class:`Rows`: the
caller's X in its own dtype (uint8 images stay uint8) plus the row indices of one side of the
split. Each batch is gathered from X into a buffer reused batch after batch
(``np.take(..., out=...)`` on the batch's slice of indices), cast to the run dtype and
standardized there. Per element that is the same arithmetic, in the same dtype, as casting and
standardizing the whole split first (what the loop did before issue 18), so results are the
same bit for bit; but the setup touches no memory beyond a few batches, and peak memory is
the caller's data plus the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from core.preprocessing import Preprocessing

Array = NDArray[Any]
# Rows per chunk of a standardization fit (Rows.chunks): its float64 chunk stays in L2 cache.
FIT_CHUNK_ROWS = 64


def split_indices(n: int, validation_split: float, seed: int) -> tuple[Array, Array]:
    """(train_idx, val_idx) for ``n`` rows: a seeded permutation, the LAST fraction held out.

    The permutation comes from its own Generator (``default_rng([seed, 1])``), so the split
    does not depend on, nor disturb, the weight initialisation or the shuffles. Both index
    arrays are sorted, so the training rows keep their original order when shuffle is off.
    ``round(n * validation_split)`` rows are held out, at least one when the split is > 0,
    and at least one row is always left for training.
    """
    n_val = 0
    if validation_split > 0.0:
        n_val = min(max(1, round(n * validation_split)), n - 1)
    perm = np.random.default_rng([seed, 1]).permutation(n)
    return np.sort(perm[: n - n_val]), np.sort(perm[n - n_val:])


def shuffle_generator(seed: int) -> np.random.Generator:
    """The run's Generator for the per-epoch shuffles (independent of init and dropout)."""
    return np.random.default_rng([seed, 2])


class Rows:
    """Rows ``index`` of (X, y) as the network sees them, one batch at a time.

    Parameters
    ----------
    X : ndarray (N, *sample_shape) in any numeric dtype; never written, never copied whole
    y : ndarray (N,) or (N, k), already in the dtype the loss takes
    index : the rows of X that belong here, in order (sorted split indices)
    dtype : the run dtype batches are cast to
    preprocessing : standardization applied to every batch after the cast (settable, so
        that it can be fitted on :meth:`chunks` first)

    A batch is valid until the next one is asked for: it lives in this object's buffers
    (or, when nothing needs gathering, casting or standardizing, is a view of X).
    """

    def __init__(self, X: Array, y: Array, index: Array, dtype: DTypeLike,
                 preprocessing: Preprocessing | None = None) -> None:
        self.X, self.y = X, y
        self.dtype = np.dtype(dtype)
        self.n = int(index.shape[0])
        # All of X in order (no split): a batch of consecutive rows is a slice, no gather.
        whole = self.n == X.shape[0] and bool(np.array_equal(index, np.arange(self.n)))
        self.index: Array | None = None if whole else index
        self.preprocessing = preprocessing
        # Rows of a C-contiguous X in the run dtype can be handed out as views; any other
        # layout is gathered into a C-contiguous buffer, as the whole-split copy was.
        self._viewable = X.dtype == self.dtype and X.flags.c_contiguous
        self._buffers: dict[str, Array] = {}

    def _buffer(self, name: str, like: Array, rows: int, dtype: np.dtype[Any]) -> Array:
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < rows:
            buf = self._buffers[name] = np.empty((rows, *like.shape[1:]), dtype=dtype)
        return buf[:rows]

    def rows(self, positions: Array | slice) -> tuple[Array, Array]:
        """The batch at ``positions`` (a slice of 0..n, or an index array into it): (x, y)."""
        if isinstance(positions, slice):
            start, stop, _ = positions.indices(self.n)
            count = stop - start
            source: Array | slice = (positions if self.index is None
                                     else self.index[positions])
        else:
            count = int(positions.shape[0])
            source = positions if self.index is None else self.index[positions]
        return self._x(source, count), self._y(source, count)

    def _x(self, source: Array | slice, count: int) -> Array:
        X, prep = self.X, self.preprocessing
        if isinstance(source, slice):
            raw = X[source]
            if prep is None and self._viewable:
                return raw
        else:
            # mode="clip" is exact for valid indices and skips the buffered bounds-checked
            # path (2-3x faster with ``out=``).
            raw = np.take(X, source, axis=0, mode="clip",
                          out=self._buffer("raw", X, count, X.dtype))
        if raw.dtype == self.dtype and not isinstance(source, slice):
            x = raw  # gathered into our own buffer: standardize it in place
        elif prep is not None and np.can_cast(raw.dtype, self.dtype, "safe"):
            # Exact widening (uint8 -> float32, float32 -> float64): the subtraction's loop
            # runs in the run dtype, as a cast then an in-place subtraction would.
            x = self._buffer("x", X, count, self.dtype)
            np.subtract(raw, prep.mean, out=x)
            np.divide(x, prep.std, out=x)
            return x
        else:
            x = self._buffer("x", X, count, self.dtype)
            np.copyto(x, raw, casting="unsafe")
        return x if prep is None else prep.apply_inplace(x)

    def _y(self, source: Array | slice, count: int) -> Array:
        if isinstance(source, slice):
            return self.y[source]
        return np.take(self.y, source, axis=0, mode="clip",
                       out=self._buffer("y", self.y, count, self.y.dtype))

    def batches(self, size: int, order: Array | None = None, start_batch: int = 0
                ) -> Iterator[tuple[Array, Array]]:
        """Batches of ``size`` rows (the last may be smaller) in ``order`` (a permutation of
        0..n) or in order, from batch index ``start_batch`` on."""
        for start in range(start_batch * size, self.n, size):
            yield self.rows(slice(start, start + size) if order is None
                            else order[start:start + size])

    def chunks(self, size: int) -> Iterator[Array]:
        """The rows' inputs in order, cast to the run dtype but NOT standardized: what a
        standardization is fitted on."""
        prep, self.preprocessing = self.preprocessing, None
        try:
            for start in range(0, self.n, size):
                yield self.rows(slice(start, start + size))[0]
        finally:
            self.preprocessing = prep


class EpochBatches:
    """Mini-batches of a run's training :class:`Rows`, epoch after epoch.

    Parameters
    ----------
    rows : the training rows
    batch_size : rows per batch; the last batch of an epoch may be smaller
    shuffle : draw a fresh permutation each epoch from the Generator given to :meth:`order`
    """

    def __init__(self, rows: Rows, batch_size: int, shuffle: bool) -> None:
        self.rows = rows
        self.n = rows.n
        self.batch_size = max(1, min(int(batch_size), self.n))
        self.shuffle = shuffle

    @property
    def num_batches(self) -> int:
        """Batches per epoch."""
        return -(-self.n // self.batch_size)

    def order(self, rng: np.random.Generator) -> Array | None:
        """This epoch's permutation (advances ``rng``), or None when not shuffling."""
        return rng.permutation(self.n) if self.shuffle else None

    def batches(self, order: Array | None, start_batch: int = 0
                ) -> Iterator[tuple[Array, Array]]:
        """The epoch's batches (x, y) in ``order``, from batch index ``start_batch`` on."""
        return self.rows.batches(self.batch_size, order, start_batch)
