"""The Dataset every parser returns, the size limits they enforce, and the shared checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.errors import DatasetError

Array = NDArray[Any]

# The kind of a dataset uploaded without a target (`features_only`): batch predictions score
# it, training refuses it (validate.check_trainable).
FEATURES_ONLY = "features"

# Few distinct non-negative integer targets mean class labels; more mean a measured quantity.
MAX_CLASSES = 100
# Integer features kept in their own dtype (image pixels, 8- and 16-bit sensor counts): every
# value is exact in float32, so training casts each batch to the run dtype (core.batching)
# with the same result as a float copy made up front, at a quarter (or half) of float32's
# bytes stored and in memory. Wider integers (and booleans) become float64, as they always did.
KEPT_INTEGER_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16"))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays ready for ``core.train``.

    Attributes
    ----------
    X : (N, F), (N, H, W) or (N, C, H, W) floating array, or one of KEPT_INTEGER_DTYPES
        (an upload's uint8 images stay uint8)
    y : (N,) int64 class indices for classification; (N,) or (N, k) floats for regression
    kind : "classification", "regression", "unknown", or FEATURES_ONLY ("features": no
        target, uploaded for scoring; y has shape (N, 0))
    classes : label of each class index (strings from a CSV/JSON target, else 0..K-1)
    feature_names : CSV header names of the feature columns, or None
    """

    X: Array
    y: Array
    kind: str
    classes: list[Any] | None = None
    feature_names: list[str] | None = None

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    @cached_property
    def y_range(self) -> tuple[float, float]:
        """(min, max) of y, worked out once: the service checks the labels of one stored
        dataset against every job submitted on it, and the arrays never change."""
        if self.y.size == 0:
            return (0.0, -1.0)
        return (float(self.y.min()), float(self.y.max()))


@dataclass(frozen=True)
class DatasetLimits:
    """Refuse datasets beyond these sizes (README: Configuration); ``max_bytes`` bounds
    decompression."""

    max_rows: int = 1_000_000
    max_features: int = 100_000
    max_bytes: int = 512 * 2**20


def check_size(n_rows: int, n_features: int, limits: DatasetLimits) -> None:
    if n_rows > limits.max_rows:
        raise DatasetError(f"{n_rows} rows exceed the limit of {limits.max_rows}", "file")
    if n_features > limits.max_features:
        raise DatasetError(f"{n_features} features exceed the limit of {limits.max_features}",
                           "file")


def first_nonfinite_row(values: Array) -> int | None:
    """1-based index of the first row with NaN or inf, or None."""
    flat = values.reshape(values.shape[0], -1)
    good = np.isfinite(flat).all(axis=1)
    return None if bool(good.all()) else int(np.argmin(good)) + 1


def encode_labels(labels: Array) -> tuple[Array, list[Any]]:
    """String labels -> (int64 indices into the sorted classes, the sorted classes)."""
    classes, indices = np.unique(labels, return_inverse=True)
    return indices.astype(np.int64).reshape(-1), [str(c) for c in classes.tolist()]


def finish(X: Array, y: Array, *, limits: DatasetLimits, classes: list[Any] | None = None,
           feature_names: list[str] | None = None) -> Dataset:
    """Check shapes, sizes and finiteness; infer the kind; cast labels.

    Parameters
    ----------
    X : (N, ...) numeric array; cast to float64 unless floating or of KEPT_INTEGER_DTYPES
    y : (N,) or (N, k) numeric array (already encoded when ``classes`` is given)
    """
    X = checked_features(X, limits)
    n = int(X.shape[0])
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise DatasetError(f"y must be (N,) or (N, k) with N = {n} rows like X, got shape "
                           f"{y.shape}", "y")
    bad = first_nonfinite_row(X) if X.dtype.kind == "f" else None
    if bad is not None:
        raise DatasetError(f"X row {bad}: NaN or inf values are not allowed", "X")
    if classes is not None:
        return Dataset(X, y.astype(np.int64), "classification", classes, feature_names)
    if y.dtype.kind not in "fiub":
        raise DatasetError(f"y must be numeric or string labels, got dtype {y.dtype}", "y")
    y_float = y.astype(np.float64)
    bad = first_nonfinite_row(y_float)
    if bad is not None:
        raise DatasetError(f"y row {bad}: NaN or inf values are not allowed", "y")
    kind = infer_kind(y_float)
    if kind == "classification":
        labels = y_float.astype(np.int64)
        return Dataset(X, labels, kind, list(range(int(labels.max()) + 1)), feature_names)
    return Dataset(X, y if y.dtype.kind == "f" else y_float, kind, None, feature_names)


def infer_kind(y: Array) -> str:
    """"classification" for 1-D non-negative integer labels with few distinct values."""
    if y.ndim != 1:
        return "regression"
    integral = bool(np.all(y == np.round(y))) and float(y.min()) >= 0
    if integral and float(y.max()) < 10 * MAX_CLASSES and len(np.unique(y)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def finish_features(X: Array, *, limits: DatasetLimits,
                    feature_names: list[str] | None = None) -> Dataset:
    """A features-only dataset (kind FEATURES_ONLY, y of shape (N, 0)): X checked for shape,
    size and type like :func:`finish`'s, but a row with NaN or inf is kept: scoring lists it
    by index (a batch prediction's per-row errors) and scores the others."""
    X = checked_features(X, limits)
    n = int(X.shape[0])
    return Dataset(X, np.zeros((n, 0), dtype=np.float64), FEATURES_ONLY, None, feature_names)


def checked_features(X: Array, limits: DatasetLimits) -> Array:
    """X of a dataset, with or without a target: its shape, size and type checked; cast to
    float64 unless floating or of KEPT_INTEGER_DTYPES (finiteness is the caller's rule)."""
    if X.ndim not in (2, 3, 4):
        raise DatasetError(f"X must be (N, features), (N, H, W) or (N, C, H, W), got shape "
                           f"{X.shape}", "X")
    n = int(X.shape[0])
    if n == 0:
        raise DatasetError("the dataset has no rows", "X")
    check_size(n, math.prod(X.shape[1:]), limits)
    if X.dtype.kind not in "fiub":
        raise DatasetError(f"X must be numeric, got dtype {X.dtype}", "X")
    if X.dtype.kind != "f" and X.dtype not in KEPT_INTEGER_DTYPES:
        X = X.astype(np.float64)
    return X
