"""Global-norm gradient clipping, as ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]


def _vector_norm(array: Array, norm_type: float) -> Any:
    """The p-norm of ``array`` flattened, as a scalar of its dtype (no full-size temporary
    for p = 2 and p = inf)."""
    flat = array.reshape(-1)
    if norm_type == 2.0:
        return np.sqrt(np.dot(flat, flat))
    if math.isinf(norm_type):
        return np.maximum(flat.max(), -flat.min()) if flat.size else flat.dtype.type(0)
    if norm_type == 1.0:
        return np.abs(flat).sum()
    return (np.abs(flat) ** norm_type).sum() ** (1.0 / norm_type)


def clip_grad_norm(grads: Mapping[str, Array], max_norm: float,
                   norm_type: float = 2.0) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``.

    As PyTorch: the total norm is the ``norm_type``-norm of the per-array norms, computed in
    the gradients' dtype; the coefficient ``max_norm / (total_norm + 1e-6)`` is applied only
    when below 1. A NaN or infinite norm is returned as is, the gradients then NaN or zero as
    in torch (the trainer's divergence guard decides what to do with it).

    Parameters
    ----------
    grads : name -> ndarray of any shape, all of one float dtype; modified in place
    max_norm : positive float
    norm_type : p of the p-norm, ``2.0`` by default; ``math.inf`` for the max norm

    Returns
    -------
    float
        The total norm before clipping.
    """
    norm_type = float(norm_type)
    if not norm_type > 0.0:
        raise ValueError(f"norm_type must be positive, got {norm_type}")
    arrays = list(grads.values())
    if not arrays:
        return 0.0
    dtype = arrays[0].dtype
    norms = np.array([_vector_norm(g, norm_type) for g in arrays], dtype=dtype)
    total = _vector_norm(norms, norm_type)
    # float32 stays float32: total is a dtype scalar and Python floats are weak in NumPy 2
    clip_coef = dtype.type(max_norm) / (total + 1e-6)
    # torch multiplies by min(coef, 1) always: a NaN norm spreads NaN to every gradient
    if not clip_coef >= 1.0:
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN here, as in torch
            for g in arrays:
                g *= clip_coef
    return float(total)
