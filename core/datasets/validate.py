"""Does a dataset fit a spec? Label ranges, target shapes and the input shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.datasets.dataset import FEATURES_ONLY, Dataset
from core.errors import DatasetError, SpecError
from core.spec.shapes import infer_shapes

if TYPE_CHECKING:
    from core.spec import Spec


def check_trainable(dataset: Dataset) -> None:
    """Raise DatasetError("dataset") for a dataset without a target (features only)."""
    if dataset.kind == FEATURES_ONLY:
        raise DatasetError("the dataset was uploaded with features_only (no target): it can be "
                           "scored by a batch prediction, not trained on; upload it with its "
                           "target to train", "dataset")


def validate_for_spec(dataset: Dataset, spec: Spec) -> None:
    """Raise if ``spec`` cannot train on ``dataset``.

    SpecError (naming ``model.layers[i]``) when the layers cannot take X's sample shape;
    DatasetError (naming the first bad row, 1-based) for labels or targets that do not fit
    the loss and the output layer.
    """
    check_trainable(dataset)
    X, y = dataset.X, dataset.y
    shapes = infer_shapes(spec.model, X.shape[1:])
    last = len(shapes) - 1
    if len(shapes[-1]) != 1:
        raise SpecError(f"model.layers[{last}]", f"the network's output must be flat (k,), got "
                        f"{shapes[-1]}; end with a flatten and a dense layer")
    units = shapes[-1][0]
    loss = spec.loss.type
    if loss == "cross_entropy":
        _check_labels(dataset, units, last)
    elif loss == "binary_cross_entropy":
        _check_targets(y, units, last, loss)
        outside = np.flatnonzero(((y < 0) | (y > 1)).reshape(len(y), -1).any(axis=1))
        if outside.size:
            r = int(outside[0])
            raise DatasetError(f"y row {r + 1}: binary_cross_entropy needs targets in [0, 1], "
                               f"got {y[r].tolist()}", "dataset")
    else:
        _check_targets(y, units, last, loss)


def _check_labels(dataset: Dataset, units: int, last: int) -> None:
    y = dataset.y
    if y.ndim == 1 and y.dtype.kind in "iu":
        low, high = dataset.y_range
        if low >= 0 and high < units:
            return  # every label fits; only a misfit needs the row-by-row search below
    if y.ndim != 1 or y.dtype.kind not in "iu":
        if y.ndim == 1 and y.dtype.kind == "f" and bool(np.all(y == np.round(y))):
            y = y.astype(np.int64)
        else:
            raise DatasetError("cross_entropy needs integer class labels y of shape (N,), "
                               f"got {y.dtype} of shape {y.shape}; use a regression loss",
                               "dataset")
    outside = np.flatnonzero((y < 0) | (y >= units))
    if outside.size:
        r = int(outside[0])
        raise DatasetError(f"y row {r + 1}: label {int(y[r])} is outside 0..{units - 1}; the "
                           f"output layer model.layers[{last}] has {units} units, one per class",
                           "dataset")


def _check_targets(y: np.ndarray, units: int, last: int, loss: str) -> None:
    width = 1 if y.ndim == 1 else int(y.shape[1])
    if width != units:
        raise DatasetError(f"{loss} targets have {width} column(s) but the output layer "
                           f"model.layers[{last}] has {units} units", "dataset")
