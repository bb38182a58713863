"""Input standardization, fitted on the training rows only and kept with the model.

Statistics are per feature of one sample, i.e. over the flattened input: an image input
(C, H, W) gets a mean and std per pixel and channel, the same way scikit-learn's
StandardScaler treats a flattened image. That keeps ``(x - mean) / std`` a plain broadcast a
user can apply with NumPy alone from ``weights.npz`` (docs/checkpoint-format.md).
"""

from __future__ import annotations

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
